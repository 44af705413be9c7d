# The wheelhouse tool itself as a derivation: our package plus its pinned pure-Python
# dependencies (nixlib/tool-deps.pylock.toml, fetched with Nix's builtin fetchurl), unpacked by a
# stdlib-only builder. No nixpkgs, no pip: this is what the other derivations run.
let
  interp = import ./python.nix;
  lockLib = import ./lock.nix;
in
{
  /* Build the wheelhouse tool for an interpreter.

     Type: mkTool :: { python :: Derivation | String; src ? Path; } -> Derivation

     Example:
       mkTool { python = pkgs.python3; }
       => «derivation /nix/store/...-wheelhouse-tool.drv»   # $out/lib/wheelhouse on PYTHONPATH, $out/bin/wheelhouse
  */
  mkTool = { python, src ? ../wheelhouse }:
    let
      py = interp.toInterpreter python;
      deps = lockLib.readLock ./tool-deps.pylock.toml;
      fetchWheel = w: import <nix/fetchurl.nix> {
        url = w.url;
        sha256 = w.hashes.sha256;
        name = w.name;
      };
      wheels = builtins.concatMap (p: map fetchWheel p.wheels) deps.packages;
    in
    derivation {
      name = "wheelhouse-tool";
      system = py.system;
      builder = py.executable;
      args = [ "-I" "-B" ./build_tool.py ];
      python = py.executable;
      src = builtins.path {
        path = src;
        name = "wheelhouse-src";
        filter = p: _type: baseNameOf p != "__pycache__" && builtins.match ".*\\.pyc" p == null;
      };
      wheels = builtins.concatStringsSep " " (map toString wheels);
    };

  /* Builder arguments that run `python -m wheelhouse ARGS` from `tool`, isolated from the build
     environment's PYTHONPATH and user site (`-I`), writing no bytecode of its own (`-B`). An
     argument `@env:NAME` is replaced by the value of the environment variable NAME at build
     time (for paths only known then, such as a `passAsFile` file).

     Type: wheelhouseArgs :: Derivation -> [String] -> [String]

     Example:
       wheelhouseArgs tool [ "fetch" ./pylock.toml "--wheelhouse" (builtins.placeholder "out") ]
       => [ "-I" "-B" "-c" "..." "/nix/store/...-wheelhouse-tool/lib/wheelhouse" "fetch" ... ]
  */
  wheelhouseArgs = tool: args:
    [ "-I" "-B" "-c"
      ("import os, sys; sys.path.insert(0, sys.argv.pop(1)); "
       + "sys.argv = [os.environ[a[5:]] if a.startswith('@env:') else a for a in sys.argv]; "
       + "import runpy; runpy.run_module('wheelhouse', run_name='__main__', alter_sys=True)")
      "${tool}/lib/wheelhouse" ] ++ args;
}
