# nixlib: lock -> one wheelhouse -> one env, with builtins and a Python interpreter only.
# Each concern lives in its own file; this one only gathers them.
let
  tool = import ./tool.nix;
  wheelhouse = import ./wheelhouse.nix;
  env = import ./env.nix;
  lockLib = import ./lock.nix;
  python = import ./python.nix;
  sdists = import ./sdists.nix;
  project = import ./project.nix;
  image = import ./image.nix;
in
lockLib // python // {
  inherit (tool) mkTool wheelhouseArgs;
  inherit (wheelhouse) mkWheelhouse;
  inherit (env) mkEnv nixpkgsPackages runpathArgs;
  inherit (image) mkImage imageArgs;
  inherit (sdists) mkSdistWheels targetSdists buildOverrides inputPaths normalizeName isolationArgs;
  inherit (project) mkBdistWheel mkApp mkDevelop lockedProject cleanSource editableRoot;

  /* The project-level entry point: a lock and the project source to
     `{ tool; wheelhouse; sdistWheels; env; bdist_wheel; build; develop; image; bdist_docker; }`. `env` holds the
     locked dependencies; the other three need `src` and a lock that records the project
     (`wheelhouse lock PROJECT_DIR`): `bdist_wheel` is the project's wheel, `build` the
     application (that wheel over `env`), `develop` the shell for `nix-shell -A develop` (the
     project editable from the working tree, `devTools` on PATH). When the target installs sdists, `sdistWheels`
     (ONE derivation, see `mkSdistWheels`) builds them and the env installs its wheels; without
     sdists it is null and the env uses the wheelhouse directly. `fromNixpkgs` packages come from
     `pythonPackages` instead of the lock (and are neither built nor installed from it).
     `patchelf` and `manylinuxLibs` run the env's RUNPATH pass (see `runpathArgs`).
     `image` is the env as a layered OCI image (`mkImage`; `imageOptions` are passed to it, e.g.
     `{ entrypoint = [ ... ]; extraPaths = [ ... ]; }`); `bdist_docker` (the RFC's name) is the
     application's image (`build` over the env's layers) for a locked project with `src`, else
     `image`.

     Type: mkProject :: { lock :: Path; python :: Derivation | String; src ? Path | null; target ? String | null; cacert ? Derivation | null; tool ? Derivation; buildInputs ? [ Derivation | String ]; overrides ? AttrSet; fromNixpkgs ? [ String ]; pythonPackages ? AttrSet; jobs ? Int; isolation ? String; patchelf ? Derivation | String | null; manylinuxLibs ? [ Derivation | String | Path ]; devTools ? [ Derivation | String ]; mkShell ? (AttrSet -> Derivation) | null; imageOptions ? AttrSet; } -> { tool; wheelhouse; sdistWheels; env; bdist_wheel; build; develop; image; bdist_docker; }

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
              , isolation ? "auto", patchelf ? null, manylinuxLibs ? [ ], devTools ? [ ], mkShell ? null
              , imageOptions ? { } }:
    let
      wh = (import ./wheelhouse.nix).mkWheelhouse { inherit lock python tool target cacert; };
      excluded = map sdists.normalizeName fromNixpkgs;
      toBuild = builtins.filter (s: !(builtins.elem s.name excluded))
        (sdists.targetSdists { lock = lockLib.readLock lock; target = wh.target; });
      built =
        if toBuild == [ ] then null
        else sdists.mkSdistWheels {
          inherit lock python tool overrides buildInputs jobs isolation;
          wheelhouse = wh;
          exclude = fromNixpkgs;
        };
      needSrc = what:
        if src == null then throw "nixlib: mkProject's ${what} needs `src` (the project directory): pass src = ./.;"
        else src;
      env = (import ./env.nix).mkEnv {
        inherit lock python tool name built fromNixpkgs pythonPackages patchelf manylinuxLibs;
        wheelhouse = wh;
      };
      bdist_wheel = project.mkBdistWheel {
        src = needSrc "bdist_wheel";
        inherit lock python tool jobs isolation;
        wheelhouse = wh;
      };
      img = image.mkImage ({ inherit env python tool name; } // imageOptions);
      build = project.mkApp {
        inherit python tool env;
        wheel = bdist_wheel;
        name = (project.lockedProject { lock = lockLib.readLock lock; lockPath = toString lock; }).name;
      };
    in {
      inherit tool env bdist_wheel build;
      image = img;
      bdist_docker =
        if src == null || (lockLib.readLock lock).tool.wheelhouse.project or null == null then img
        else image.mkImage ({ inherit env python tool name; app = build; } // imageOptions);
      wheelhouse = wh;
      sdistWheels = built;
      develop = project.mkDevelop {
        src = needSrc "develop";
        inherit lock python tool built devTools mkShell;
        wheelhouse = wh;
        name = "${name}-develop";
      };
    };
}
