# Tests for ../project.nix (pure parts): finding the locked project, where editable installs point.
let
  lib = import ../project.nix;
  lock = {
    lock-version = "1.0";
    packages = [
      { name = "alpha"; version = "1.0"; wheels = [ { name = "alpha-1.0-py3-none-any.whl"; hashes.sha256 = "aa"; } ]; }
      { name = "sample-app"; version = "0.3"; directory = { path = "."; editable = true; }; }
    ];
    tool.wheelhouse.project = "sample-app";
  };
in
{
  findsTheProjectEntry = {
    expr = lib.lockedProject { inherit lock; lockPath = "/p/pylock.toml"; };
    expected = { name = "sample-app"; version = "0.3"; };
  };
  dynamicVersionIsNull = {
    expr = (lib.lockedProject {
      lock = lock // { packages = [ { name = "sample-app"; directory = { path = "."; }; } ]; };
      lockPath = "/p/pylock.toml";
    }).version;
    expected = null;
  };
  editableRootIsTheTreeWithoutSrc = {
    expr = lib.editableRoot ./.;
    expected = toString ./.;
  };
  editableRootIsSrcInASrcLayout = {
    expr = lib.editableRoot ./fixtures/src-layout;
    expected = toString ./fixtures/src-layout + "/src";
  };
}
