# Plone 6 as a wheelhouse project: ONE fixed-output wheelhouse derivation (242 wheels) and ONE env
# derivation (a venv layout with a single site-packages), no per-package derivations.
#
#   SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt nix-build examples/plone -A env -o plone-env
#   ./plone-env/bin/mkwsgiinstance -d instance -u admin:admin
#   ./plone-env/bin/runwsgi instance/etc/zope.ini
#
# Real users pass `python = pkgs.python3;` (nixpkgs) and `cacert = pkgs.cacert;`; on a machine
# without nixpkgs any CPython 3.11 interpreter path works.
{ python ? "/usr/bin/python3"
, cacert ? null
, wheelhouse ? import ../.. { inherit python; }
}:
wheelhouse.lib.mkProject {
  src = ./.;
  lock = ./pylock.toml;
  name = "plone-env";
  inherit python cacert;
}
