"""The Vagrant test site (vagrant/), as an admin brings it up on a machine like this one: Debian's
vagrant with the docker provider and podman standing in for docker.

The Vagrantfile validates for both sites and both providers (libvirt's settings are checked by
vagrant-libvirt, though no VM can run here); `vagrant up --provider=docker` of the all-in-one site
installs ARK with `ark init` and `ark deploy` (its re-apply changing nothing); a grid job from the
ARC client outside the site comes back with `arcget`; `vagrant destroy` leaves no container and no
network behind.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ark.vagrant import VAGRANT_DIR
from localsite.saltsite import hello_grid_job, push_site_images
from localsite.vagrantsite import VagrantSite, running_vagrant_site, vagrant, vagrant_env

SITE = "all-in-one"
pytestmark = pytest.mark.host  # rootful podman and the machine's iptables: root only


def log(message: str) -> None:
    print(message, file=sys.stderr)


@pytest.mark.parametrize("provider", ["docker", "libvirt"])
@pytest.mark.parametrize("site", ["split", "all-in-one"])
def test_the_vagrantfile_validates(site, provider, tmp_path):
    env = vagrant_env(tmp_path, site, tmp_path / "files") | {"VAGRANT_DEFAULT_PROVIDER": provider}
    output = vagrant(("validate",), env, timeout=120, progress=log)
    assert "Vagrantfile validated successfully" in output


def test_an_unknown_site_is_refused_naming_the_sites(tmp_path):
    result = subprocess.run(["vagrant", "validate"], cwd=VAGRANT_DIR, env=vagrant_env(tmp_path, "nope", tmp_path),
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert 'site "nope"' in result.stderr and "the sites are all-in-one, split" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def up(tmp_path_factory) -> VagrantSite:
    work = tmp_path_factory.mktemp("vagrant")
    with running_vagrant_site(SITE, work, progress=log) as site:
        yield site


def test_vagrant_up_installs_the_site_with_ark_deploy(up):
    inventory = (up.state / "inventory.yaml").read_text()
    assert "ssh_user: vagrant" in inventory and f"files_repo: {up.settings.files_repo}" in inventory
    assert (up.pillar / "top.sls").is_file() and (up.pillar / "ca" / "ca.crt").is_file()
    log(f"vagrant up {SITE} with ark deploy: {up.timings['vagrant_up']:.0f} s")


def test_vagrant_provision_again_changes_nothing(up):
    output = up.vagrant("provision", progress=log)
    assert "highstate (second pass) ... ok" in output
    first = [line for line in output.splitlines() if "highstate (first pass)" in line]
    assert first and all(" 0 changed" in line for line in first), first


def test_a_grid_job_from_the_arc_client_comes_back_with_arcget(up, tmp_path):
    push_site_images(up, tmp_path, progress=log)
    state, stdout, seconds = hello_grid_job(up, tmp_path, "vagrant")
    log(f"grid job arcsub -> {state} on the Vagrant site: {seconds:.1f} s")
    assert (state, stdout) == ("Finished", "hello vagrant\n20001\n")


def test_vagrant_destroy_leaves_no_machine_no_volume_and_no_network(up):
    def docker(*args: str) -> list[str]:
        return subprocess.run(["docker", *args], env=up.env, capture_output=True, text=True, check=True).stdout.split()

    machines = [name for name in docker("ps", "-a", "--format", "{{.Names}}") if name.startswith("vagrant_")]
    volumes = {v for m in machines for v in docker("inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", m)}
    assert machines and volumes, (machines, volumes)
    up.vagrant("destroy", "--force", timeout=300, progress=log)
    assert not [name for name in docker("ps", "-a", "--format", "{{.Names}}") if name.startswith("vagrant_")]
    assert not volumes & set(docker("volume", "ls", "-q")), "the machines' /var volumes are still there"
    network = subprocess.run(["docker", "network", "inspect", up.settings.network], env=up.env, capture_output=True)
    assert network.returncode != 0, f"network {up.settings.network} is still there"
