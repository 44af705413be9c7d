# nixlib: lock -> one wheelhouse -> one env, with builtins and a Python interpreter only.
# Each concern lives in its own file; this one only gathers them.
let
  tool = import ./tool.nix;
  wheelhouse = import ./wheelhouse.nix;
  env = import ./env.nix;
  lockLib = import ./lock.nix;
  python = import ./python.nix;
  sdists = import ./sdists.nix;
in
lockLib // python // {
  inherit (tool) mkTool wheelhouseArgs;
  inherit (wheelhouse) mkWheelhouse;
  inherit (env) mkEnv nixpkgsPackages runpathArgs;
  inherit (sdists) mkSdistWheels targetSdists buildOverrides inputPaths normalizeName;

  /* The project-level entry point: a lock (and later the project source) to
     `{ tool; wheelhouse; sdistWheels; env; }`. When the target installs sdists, `sdistWheels`
     (ONE derivation, see `mkSdistWheels`) builds them and the env installs its wheels; without
     sdists it is null and the env uses the wheelhouse directly. `fromNixpkgs` packages come from
     `pythonPackages` instead of the lock (and are neither built nor installed from it).
     `patchelf` and `manylinuxLibs` run the env's RUNPATH pass (see `runpathArgs`).

     Type: mkProject :: { lock :: Path; python :: Derivation | String; src ? Path | null; target ? String | null; cacert ? Derivation | null; tool ? Derivation; buildInputs ? [ Derivation | String ]; overrides ? AttrSet; fromNixpkgs ? [ String ]; pythonPackages ? AttrSet; jobs ? Int; patchelf ? Derivation | String | null; manylinuxLibs ? [ Derivation | String | Path ]; } -> { tool; wheelhouse; sdistWheels; env; }

     Example:
       (mkProject { src = ./.; lock = ./pylock.toml; python = pkgs.python3;
                    buildInputs = [ pkgs.stdenv.cc pkgs.pkg-config ];
                    overrides.psycopg2.nativeBuildInputs = [ pkgs.postgresql ];
                    fromNixpkgs = [ "numpy" ]; pythonPackages = pkgs.python3.pkgs;
                    patchelf = pkgs.patchelf; manylinuxLibs = [ pkgs.stdenv.cc.cc.lib pkgs.zlib ]; }).env
       => «derivation /nix/store/...-python-env.drv»
  */
  mkProject = { lock, python, src ? null, target ? null, cacert ? null, name ? "python-env"
              , tool ? (import ./tool.nix).mkTool { inherit python; }
              , buildInputs ? [ ], overrides ? { }, fromNixpkgs ? [ ], pythonPackages ? { }, jobs ? 2
              , patchelf ? null, manylinuxLibs ? [ ] }:
    let
      wh = (import ./wheelhouse.nix).mkWheelhouse { inherit lock python tool target cacert; };
      excluded = map sdists.normalizeName fromNixpkgs;
      toBuild = builtins.filter (s: !(builtins.elem s.name excluded))
        (sdists.targetSdists { lock = lockLib.readLock lock; target = wh.target; });
      built =
        if toBuild == [ ] then null
        else sdists.mkSdistWheels {
          inherit lock python tool overrides buildInputs jobs;
          wheelhouse = wh;
          exclude = fromNixpkgs;
        };
    in {
      inherit tool;
      wheelhouse = wh;
      sdistWheels = built;
      env = (import ./env.nix).mkEnv {
        inherit lock python tool name built fromNixpkgs pythonPackages patchelf manylinuxLibs;
        wheelhouse = wh;
      };
    };
}
