# The project's own targets, each ONE derivation on top of the one wheelhouse: its wheel built
# offline (`bdist_wheel`), the application (`build`: that wheel installed over the dependency
# env, which is reused as it is) and the development shell (`develop`: the dependencies plus the
# project editable from the working tree). No stdenv: `nix-shell` runs `shellHook` by itself.
let
  interp = import ./python.nix;
  toolLib = import ./tool.nix;
  lockLib = import ./lock.nix;
  inherit (builtins) baseNameOf concatStringsSep elem match pathExists;
in
rec {
  /* The project a lock was made for (`wheelhouse lock PROJECT_DIR` records it), or a throw
     naming the lock and the command that records one.

     Type: lockedProject :: { lock :: AttrSet; lockPath :: String; } -> { name :: String; version :: String | null; }

     Example:
       lockedProject { lock = lockLib.readLock ./pylock.toml; lockPath = "./pylock.toml"; }
       => { name = "sample-app"; version = "0.3"; }
  */
  lockedProject = { lock, lockPath }:
    let
      name = lock.tool.wheelhouse.project or null;
      entries = builtins.filter (p: p.name == name && p ? directory) (lock.packages or [ ]);
    in
    if name == null || entries == [ ] then
      throw "nixlib: ${lockPath} records no project (no [tool.wheelhouse] project with a directory package); lock the project directory: `wheelhouse lock PROJECT_DIR`"
    else { inherit name; version = (builtins.head entries).version or null; };

  /* The project's source as the builds see it: no VCS data, caches, virtualenvs or `result`
     links, so that none of them changes the wheel.

     Type: cleanSource :: Path -> Path

     Example:
       cleanSource ./.
       => /nix/store/...-source
  */
  cleanSource = src: builtins.path {
    path = src;
    name = "source";
    filter = p: _type:
      let b = baseNameOf p; in
      !(elem b [ ".git" ".hg" ".venv" "__pycache__" ".mypy_cache" ".pytest_cache" ".ruff_cache" ])
      && match "result.*" b == null && match ".*\\.pyc" b == null;
  };

  /* Where an editable install points: the working tree itself (a path, not a store copy), its
     `src/` in a src layout. Evaluated purely (no IFD): `pathExists` on the source path.

     Type: editableRoot :: Path -> String

     Example:
       editableRoot ./.
       => "/home/me/project/src"
  */
  editableRoot = src:
    if pathExists (src + "/src") then "${toString src}/src" else toString src;

  /* The project's wheel, built offline from `src` with the build system the lock recorded
     (`python -m wheelhouse build-project`). `SOURCE_DATE_EPOCH` is fixed, so two builds give the
     same bytes. `isolation` as in `mkSdistWheels`.

     Type: mkBdistWheel :: { src :: Path; lock :: Path; python :: Derivation | String; tool :: Derivation; wheelhouse :: Derivation; jobs ? Int; isolation ? String; } -> Derivation

     Example:
       mkBdistWheel { src = ./.; lock = ./pylock.toml; python = pkgs.python3; inherit tool wheelhouse; }
       => «derivation /nix/store/...-sample-app-wheel.drv»   # $out/sample_app-0.3-py3-none-any.whl
  */
  mkBdistWheel = { src, lock, python, tool, wheelhouse, jobs ? 2, isolation ? "auto" }:
    let
      py = interp.toInterpreter python;
      project = lockedProject { lock = lockLib.readLock lock; lockPath = toString lock; };
    in
    derivation {
      name = "${project.name}-wheel";
      system = py.system;
      builder = py.executable;
      args = toolLib.wheelhouseArgs tool
        ([ "build-project" lock "--project" (cleanSource src) "--wheelhouse" wheelhouse
          "--output" (builtins.placeholder "out") "--target" wheelhouse.target.name
          "--python" py.executable "--jobs" (toString jobs) ]
        ++ (import ./sdists.nix).isolationArgs isolation);
    };

  /* The application: the project's wheel installed into its own prefix, with the dependency
     env on its `sys.path` (one `.pth` line, which also runs the env's own `.pth` files). A
     change to the project's source rebuilds the wheel and this prefix only; the env, with its
     compiled dependencies, is reused. `$out/bin` holds the project's console scripts.

     Type: mkApp :: { python :: Derivation | String; tool :: Derivation; env :: Derivation; wheel :: Derivation; name ? String; } -> Derivation

     Example:
       mkApp { python = pkgs.python3; inherit tool env; wheel = bdist_wheel; }
       => «derivation /nix/store/...-sample-app.drv»   # $out/bin/sample
  */
  mkApp = { python, tool, env, wheel, name ? "python-app" }:
    let py = interp.toInterpreter python; in
    derivation {
      inherit name;
      system = py.system;
      builder = py.executable;
      args = toolLib.wheelhouseArgs tool
        [ "install" "--wheel" wheel "--prefix" (builtins.placeholder "out")
          "--python" py.executable "--extra-site-packages" env ];
    };

  /* A development shell for `nix-shell -A develop`: `python` imports every locked dependency
     (dev groups included when locked with `--group`) and the project editable from the working
     tree, so an edit shows without a rebuild; its console scripts and `devTools` (derivations,
     or prefixes holding `bin/`) are on PATH. Only `pyproject.toml` of `src` enters the env, so
     editing other files never rebuilds it.

     With nixpkgs, `mkShell = pkgs.mkShell` makes it a regular shell derivation, which
     `nix develop` (flakes) needs as well; without, it is a plain derivation for `nix-shell`.

     Type: mkDevelop :: { src :: Path; lock :: Path; python :: Derivation | String; tool :: Derivation; wheelhouse :: Derivation; built ? Derivation | null; devTools ? [ Derivation | String ]; name ? String; mkShell ? (AttrSet -> Derivation) | null; } -> Derivation

     Example:
       mkDevelop { src = ./.; lock = ./pylock.toml; python = pkgs.python3; inherit tool wheelhouse; devTools = [ pkgs.ruff ]; }
       => «derivation /nix/store/...-python-develop.drv»   # nix-shell -A develop
  */
  mkDevelop = { src, lock, python, tool, wheelhouse, built ? null, devTools ? [ ]
              , name ? "python-develop", mkShell ? null }:
    let
      py = interp.toInterpreter python;
      root = editableRoot src;
      metadata = builtins.path {
        path = src;
        name = "project-metadata";
        filter = p: _type: p == toString src + "/pyproject.toml";
      };
      devEnv = derivation {
        name = "${name}-env";
        system = py.system;
        builder = py.executable;
        args = toolLib.wheelhouseArgs tool
          ([ "install" lock "--wheelhouse" wheelhouse "--prefix" (builtins.placeholder "out")
             "--target" wheelhouse.target.name "--python" py.executable
             "--editable" metadata "--editable-root" root ]
           ++ (if built != null then [ "--built" built ] else [ ]));
      };
      toolPath = concatStringsSep ":" (map (t: "${t}/bin") devTools);
      # nix-shell sources `$stdenv/setup`, then calls `runHook shellHook` if runHook is a
      # function: this one-line "stdenv" is all a shell without nixpkgs needs.
      shellSetup = derivation {
        name = "wheelhouse-shell-setup";
        system = py.system;
        builder = py.executable;
        args = [ "-c" ("import os; os.mkdir(os.environ['out']); "
          + "open(os.environ['out'] + '/setup', 'w').write('runHook() { eval \"\${!1-}\"; }\\n')") ];
      };
      # A flake's `src` is a store copy: then the working tree is the shell's directory.
      inStore = builtins.substring 0 (builtins.stringLength builtins.storeDir) root == builtins.storeDir;
      shellHook = ''
        export PATH="${devEnv}/bin${if devTools == [ ] then "" else ":${toolPath}"}:$PATH"
      '' + (if inStore then ''
        _wh_root="$PWD"; [ -d "$PWD/src" ] && _wh_root="$PWD/src"
        export PYTHONPATH="$_wh_root''${PYTHONPATH:+:$PYTHONPATH}"
        echo "wheelhouse develop: python is ${devEnv}/bin/python; the project is editable from $_wh_root" >&2
      '' else ''
        echo "wheelhouse develop: python is ${devEnv}/bin/python; the project is editable from ${root}" >&2
      '');
    in
    (if mkShell != null then mkShell { inherit name shellHook; }
     else derivation {
      inherit name shellHook devEnv;
      system = py.system;
      builder = py.executable;
      args = [ "-c" "import os; open(os.environ['out'], 'w').write(os.environ['shellHook'])" ];
      stdenv = shellSetup;
    }) // { env = devEnv; };
}
