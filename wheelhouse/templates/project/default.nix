# Built with wheelhouse (written by `wheelhouse init`; edit freely):
#
#   nix-shell -A develop       # python with every locked package, the project editable
#   nix-build -A build         # the application: ./result/bin/<console script>
#   nix-build -A bdist_wheel   # the project's wheel
#   nix-build -A env           # the dependencies only
#
# After changing dependencies: `wheelhouse lock . @lock_args@`.
{ pkgs ? (if builtins.any (e: e.prefix == "nixpkgs") builtins.nixPath then import <nixpkgs> { } else null)
, python ? (if pkgs != null then pkgs.python3 else "@python@")
, wheelhouse ? import @nixlib@
}:
wheelhouse.mkProject ({
  src = ./.;
  lock = ./pylock.toml;
  inherit python;
} // (if pkgs == null then { } else {
  cacert = pkgs.cacert;                                    # TLS roots for the sandboxed fetch
  patchelf = pkgs.patchelf;                                # binary wheels find their libraries
  manylinuxLibs = [ pkgs.stdenv.cc.cc.lib pkgs.zlib ];
  mkShell = pkgs.mkShell;                                  # `nix develop` too
}))
