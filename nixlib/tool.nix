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
      system = builtins.currentSystem;
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
}
