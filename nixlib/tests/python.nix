# Tests for ../python.nix.
let
  lib = import ../python.nix;
  fakePython = { outPath = "/nix/store/fake-python3"; pythonVersion = "3.12"; type = "derivation"; system = "aarch64-linux"; };
in
{
  pathInterpreter = {
    expr = lib.toInterpreter "/usr/bin/python3";
    expected = { executable = "/usr/bin/python3"; version = null; system = builtins.currentSystem; };
  };
  derivationInterpreter = {
    expr = lib.toInterpreter fakePython;
    expected = { executable = "/nix/store/fake-python3/bin/python3"; version = "3.12"; system = "aarch64-linux"; };
  };
  explicitInterpreterAttribute = {
    expr = (lib.toInterpreter (fakePython // { interpreter = "/nix/store/fake-python3/bin/python3.12"; })).executable;
    expected = "/nix/store/fake-python3/bin/python3.12";
  };
}
