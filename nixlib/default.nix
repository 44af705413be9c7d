# nixlib: lock -> one wheelhouse -> one env, with builtins and a Python interpreter only.
# Each concern lives in its own file; this one only gathers them.
let
  tool = import ./tool.nix;
  wheelhouse = import ./wheelhouse.nix;
  env = import ./env.nix;
  lock = import ./lock.nix;
  python = import ./python.nix;
in
lock // python // {
  inherit (tool) mkTool;
  inherit (wheelhouse) mkWheelhouse;
  inherit (env) mkEnv;

  /* The project-level entry point: a lock (and later the project source) to `{ wheelhouse; env; }`.

     Type: mkProject :: { lock :: Path; python :: Derivation | String; src ? Path | null; target ? String | null; cacert ? Derivation | null; tool ? Derivation; } -> { tool; wheelhouse; env; }

     Example:
       (mkProject { src = ./.; lock = ./pylock.toml; python = pkgs.python3; }).env
       => «derivation /nix/store/...-python-env.drv»
  */
  mkProject = { lock, python, src ? null, target ? null, cacert ? null, name ? "python-env"
              , tool ? (import ./tool.nix).mkTool { inherit python; } }:
    let
      wh = (import ./wheelhouse.nix).mkWheelhouse { inherit lock python tool target cacert; };
    in {
      inherit tool;
      wheelhouse = wh;
      env = (import ./env.nix).mkEnv { inherit lock python tool name; wheelhouse = wh; };
    };
}
