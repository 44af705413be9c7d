# Plone 6 as a wheelhouse project: ONE fixed-output wheelhouse derivation (242 wheels) and ONE env
# derivation (a venv layout with a single site-packages), no per-package derivations.
#
#   SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt nix-build examples/plone -A env -o plone-env
#   ./plone-env/bin/mkwsgiinstance -d instance -u admin:admin
#   ./plone-env/bin/runwsgi instance/etc/zope.ini
#
# The same env as a layered OCI image (one layer per package; see README.md here):
#
#   nix-build examples/plone -A image -o plone-image   # an OCI layout: skopeo copy oci:plone-image:6.2 ...
#
# `imageOptions` go to mkImage; with the host's interpreter (outside the Nix store) they must
# list its files as `extraPaths`, with nixpkgs' python its closure is found by Nix.
#
# Real users pass `python = pkgs.python3;` (nixpkgs) and `cacert = pkgs.cacert;`; on a machine
# without nixpkgs any CPython 3.11 interpreter path works.
{ python ? "/usr/bin/python3"
, cacert ? null
, wheelhouse ? import ../.. { inherit python; }
, imageOptions ? { }
}:
wheelhouse.lib.mkProject {
  src = ./.;
  lock = ./pylock.toml;
  name = "plone-env";
  inherit python cacert;
  imageOptions = { name = "plone"; tag = "6.2"; } // imageOptions;
}
