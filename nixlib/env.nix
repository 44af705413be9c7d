# The env: ONE derivation that installs every wheel of a wheelhouse into one prefix (a venv
# layout with a single site-packages), with `python -m wheelhouse install`. Cycles between
# packages need nothing: there are no per-package derivations to order.
let
  interp = import ./python.nix;
in
{
  /* Install a wheelhouse into `$out`: `$out/bin/python` imports every locked package and the
     console scripts sit in `$out/bin`.

     Type: mkEnv :: { lock :: Path; python :: Derivation | String; tool :: Derivation; wheelhouse :: Derivation; name ? String; compile ? Bool; } -> Derivation

     Example:
       mkEnv { lock = ./pylock.toml; python = pkgs.python3; inherit tool wheelhouse; }
       => «derivation /nix/store/...-python-env.drv»   # $out/bin/python -c 'import requests'
  */
  mkEnv = { lock, python, tool, wheelhouse, name ? "python-env", compile ? true }:
    let py = interp.toInterpreter python;
    in
    derivation {
      inherit name;
      system = builtins.currentSystem;
      builder = py.executable;
      args = [ "-I" "-B" "-c" "import sys; sys.path.insert(0, sys.argv.pop(1)); import runpy; runpy.run_module('wheelhouse', run_name='__main__', alter_sys=True)"
               "${tool}/lib/wheelhouse"
               "install" lock "--wheelhouse" wheelhouse "--prefix" (builtins.placeholder "out")
               "--target" wheelhouse.target.name "--python" py.executable ]
             ++ (if compile then [ ] else [ "--no-compile" ]);
    } // { inherit wheelhouse; };
}
