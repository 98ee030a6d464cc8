# The example site on a current upstream Kubernetes release, dropped in by pillar (the checksums
# are stand-ins; rendering only needs their shape).
ark:
  kubernetes:
    version: "1.31.4"
    checksums:
      "1.31.4":
        kube-apiserver: "6666666666666666666666666666666666666666666666666666666666666666"
        kube-controller-manager: "7777777777777777777777777777777777777777777777777777777777777777"
        kube-scheduler: "8888888888888888888888888888888888888888888888888888888888888888"
        kubelet: "9999999999999999999999999999999999999999999999999999999999999999"
        kubectl: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
