# A packaged project's default.nix: the lock and the source in; env, build, bdist_wheel and
# develop out.
#
#   wheelhouse lock examples/sample-app --group dev --python /usr/bin/python3 \
#     -o examples/sample-app/pylock.toml
#   nix-shell examples/sample-app -A develop     # python + pytest; the project editable from src/
#   nix-build examples/sample-app -A build && ./result/bin/sample-app
#   nix-build examples/sample-app -A bdist_wheel
#
# Real users pass `python = pkgs.python3;` (nixpkgs), `cacert = pkgs.cacert;` and, for binary
# wheels on NixOS, `patchelf = pkgs.patchelf; manylinuxLibs = [ pkgs.stdenv.cc.cc.lib ];`.
{ python ? "/usr/bin/python3"
, cacert ? null
, wheelhouse ? import ../.. { inherit python; }
}:
wheelhouse.lib.mkProject {
  src = ./.;
  lock = ./pylock.toml;
  inherit python cacert;
}
