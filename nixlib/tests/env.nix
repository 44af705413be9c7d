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
}
