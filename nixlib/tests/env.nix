# Tests for ../env.nix (pure parts): picking `fromNixpkgs` packages from a python package set.
let
  lib = import ../env.nix;
  lock = {
    lock-version = "1.0";
    packages = [
      { name = "numpy"; version = "2"; wheels = [ { name = "numpy-2-cp311-cp311-linux_x86_64.whl"; hashes.sha256 = "aa"; } ]; }
      { name = "idna"; version = "3"; wheels = [ { name = "idna-3-py3-none-any.whl"; hashes.sha256 = "bb"; } ]; }
    ];
  };
  target = { name = "cp311-x"; artifacts = [ "numpy-2-cp311-cp311-linux_x86_64.whl" "idna-3-py3-none-any.whl" ]; };
  numpyDrv = { type = "derivation"; outPath = "/nix/store/fake-numpy"; };
in
{
  picksNamedPackagesFromTheSet = {
    expr = map (p: { inherit (p) name; path = p.package.outPath; })
      (lib.nixpkgsPackages { inherit lock target; fromNixpkgs = [ "numpy" ]; pythonPackages = { numpy = numpyDrv; scipy = numpyDrv; }; });
    expected = [ { name = "numpy"; path = "/nix/store/fake-numpy"; } ];
  };
  nothingRequestedNothingPicked = {
    expr = lib.nixpkgsPackages { inherit lock target; fromNixpkgs = [ ]; pythonPackages = { }; };
    expected = [ ];
  };
  noPatchelfNoPass = {
    expr = lib.runpathArgs { patchelf = null; manylinuxLibs = [ ]; };
    expected = [ ];
  };
  patchelfDerivationAndLibs = {
    expr = lib.runpathArgs {
      patchelf = { type = "derivation"; outPath = "/nix/store/fake-patchelf"; };
      manylinuxLibs = [ { type = "derivation"; outPath = "/nix/store/fake-gcc-lib"; } "/opt/libs" ];
    };
    expected = [ "--patchelf" "/nix/store/fake-patchelf/bin/patchelf"
                 "--library-path" "/nix/store/fake-gcc-lib" "--library-path" "/opt/libs" ];
  };
  patchelfProgramPath = {
    expr = lib.runpathArgs { patchelf = "/usr/bin/patchelf"; manylinuxLibs = [ ]; };
    expected = [ "--patchelf" "/usr/bin/patchelf" ];
  };
}
