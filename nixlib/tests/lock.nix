# Tests for ../lock.nix: an attribute set of { expr; expected; } (pyproject.nix style), evaluated
# by tests/test_nixlib.py with `nix-instantiate --eval --strict --json`.
let
  lib = import ../lock.nix;
  pkg = name: file: sha: { inherit name; version = "1"; wheels = [ { name = file; hashes.sha256 = sha; } ]; };
  lock = {
    lock-version = "1.0";
    packages = [ (pkg "a" "a-1-py3-none-any.whl" "aa") (pkg "b" "b-1-py3-none-any.whl" "bb")
                 { name = "c"; version = "1"; sdist = { url = "https://x/c-1.tar.gz"; hashes.sha256 = "cc"; }; } ];
    tool.wheelhouse.targets = [
      { name = "cp311-linux-x86_64"; python-version = "3.11"; artifacts = [ "a-1-py3-none-any.whl" ]; }
      { name = "cp312-linux-x86_64"; python-version = "3.12"; artifacts = [ "a-1-py3-none-any.whl" "b-1-py3-none-any.whl" ]; }
    ];
  };
  t311 = builtins.elemAt lock.tool.wheelhouse.targets 0;
in
{
  artifactHashesCoversWheelsAndSdists = {
    expr = lib.artifactHashes lock;
    expected = { "a-1-py3-none-any.whl" = "aa"; "b-1-py3-none-any.whl" = "bb"; "c-1.tar.gz" = "cc"; };
  };
  selectTargetByName = {
    expr = (lib.selectTarget { inherit lock; target = "cp312-linux-x86_64"; }).python-version;
    expected = "3.12";
  };
  selectTargetByPythonVersion = {
    expr = (lib.selectTarget { inherit lock; pythonVersion = "3.11"; }).name;
    expected = "cp311-linux-x86_64";
  };
  digestIsShortAndStable = {
    expr = lib.targetDigest { inherit lock; target = t311; };
    expected = builtins.substring 0 12 (builtins.hashString "sha256" "a-1-py3-none-any.whl aa");
  };
  digestChangesWithAHash = {
    expr = lib.targetDigest { inherit lock; target = t311; }
      == lib.targetDigest { lock = lock // { packages = [ (pkg "a" "a-1-py3-none-any.whl" "ab") ]; }; target = t311; };
    expected = false;
  };
}
