# Normalising the `python` argument: an interpreter derivation (nixpkgs' `pkgs.python3`) or a plain
# path to an interpreter (tests here use the host's `/usr/bin/python3`). Nothing else in nixlib needs
# to know which of the two it got.
{
  /* Describe an interpreter for the builders.

     `system` is the interpreter derivation's own (`x86_64-linux`), so that evaluation is pure
     (flakes): only a plain path falls back to `builtins.currentSystem`.

     Type: toInterpreter :: (Derivation | String | Path) -> { executable :: String; version :: String | null; system :: String; }

     Example:
       toInterpreter pkgs.python3
       => { executable = "/nix/store/...-python3-3.11.9/bin/python3"; version = "3.11"; system = "x86_64-linux"; }
       toInterpreter "/usr/bin/python3"
       => { executable = "/usr/bin/python3"; version = null; system = builtins.currentSystem; }
  */
  toInterpreter = python:
    if builtins.isAttrs python then
      if python ? interpreter || python ? outPath then {
        executable = python.interpreter or "${python}/bin/python3";
        version = python.pythonVersion or null;
        system = python.system or builtins.currentSystem;
      } else
        throw "nixlib: `python` must be an interpreter derivation or a path, got an attribute set with keys ${builtins.toJSON (builtins.attrNames python)}"
    else if builtins.isString python || builtins.isPath python then {
      executable = toString python;
      version = null;
      system = builtins.currentSystem;
    } else
      throw "nixlib: `python` must be an interpreter derivation or a path, got a ${builtins.typeOf python}";
}
