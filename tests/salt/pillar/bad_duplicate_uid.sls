# The example site with a second VO whose user reuses VO alpha's uid.
ark:
  vos:
    beta:
      users: {bob: 20001}
      images: [base:1]
      default_image: base:1
