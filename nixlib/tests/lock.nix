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
  # As uv writes them: datetimes in inline tables of arrays, and every other TOML spelling.
  uvText = ''
    lock-version = "1.0"
    created-by = "uv"
    [[packages]]
    name = "a"
    version = "1"
    wheels = [
        { url = "https://x/a-1-py3-none-any.whl", upload-time = 2025-01-02T03:04:05Z, size = 3, hashes = { sha256 = "aa" } },
        { url = "https://x/a-1-cp311-cp311-linux_x86_64.whl", upload-time = 2025-01-02T03:04:05.123456+01:00, hashes = { sha256 = "ab" } },
    ]
    sdist = { url = "https://x/a-1.tar.gz", upload-time = 2025-01-02 03:04:05z, hashes = { sha256 = "ac" } }
    [tool.x]
    day = 2025-01-02
    at = 07:32:00.5
    text = "a = 2025-01-02 is kept as written"
  '';
  uvLock = builtins.fromTOML (lib.quoteDatetimes uvText);
in
{
  quoteDatetimesKeepsEveryValueAsText = {
    expr = {
      inherit (uvLock.tool.x) day at text;
      times = map (w: w.upload-time) (builtins.head uvLock.packages).wheels;
      sdist = (builtins.head uvLock.packages).sdist.upload-time;
    };
    expected = {
      day = "2025-01-02";
      at = "07:32:00.5";
      text = "a = 2025-01-02 is kept as written";
      times = [ "2025-01-02T03:04:05Z" "2025-01-02T03:04:05.123456+01:00" ];
      sdist = "2025-01-02 03:04:05z";
    };
  };
  quoteDatetimesChangesNothingElse = {
    expr = lib.quoteDatetimes "a = \"2025-01-02T03:04:05Z\"\nb = 2025\nc = [1, 2]\n";
    expected = "a = \"2025-01-02T03:04:05Z\"\nb = 2025\nc = [1, 2]\n";
  };
  artifactHashesOfAUvLock = {
    expr = lib.artifactHashes uvLock;
    expected = { "a-1-py3-none-any.whl" = "aa"; "a-1-cp311-cp311-linux_x86_64.whl" = "ab"; "a-1.tar.gz" = "ac"; };
  };
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
