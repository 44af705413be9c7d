# A project's default.nix, as a user writes it: the lock in, `wheelhouse` and `env` out.
#
#   nix-build examples/requests -A env && ./result/bin/python -c 'import requests'
#
# Real users pass `python = pkgs.python3;` (nixpkgs) and `cacert = pkgs.cacert;`; on a machine
# without nixpkgs any interpreter path works.
{ python ? "/usr/bin/python3"
, cacert ? null
, wheelhouse ? import ../.. { inherit python; }
}:
wheelhouse.lib.mkProject {
  src = ./.;
  lock = ./pylock.toml;
  inherit python cacert;
}
