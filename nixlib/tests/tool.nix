# Tests for ../tool.nix (the pure parts; the tool derivation itself is built by tests/test_nix.py).
let
  lib = import ../tool.nix;
  fakeTool = { outPath = "/nix/store/fake-wheelhouse-tool"; type = "derivation"; };
  args = lib.wheelhouseArgs fakeTool [ "fetch" "--wheelhouse" "@env:out" ];
in
{
  runsIsolatedWithTheToolOnSysPath = {
    expr = [ (builtins.elemAt args 0) (builtins.elemAt args 1) (builtins.elemAt args 4) ];
    expected = [ "-I" "-B" "/nix/store/fake-wheelhouse-tool/lib/wheelhouse" ];
  };
  passesTheCommandThrough = {
    expr = builtins.genList (i: builtins.elemAt args (i + 5)) 3;
    expected = [ "fetch" "--wheelhouse" "@env:out" ];
  };
  runnerExpandsEnvArguments = {
    expr = builtins.match ".*@env:.*runpy.*" (builtins.elemAt args 3) != null;
    expected = true;
  };
}
