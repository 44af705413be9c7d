# The env: ONE derivation that installs every wheel of a wheelhouse into one prefix (a venv
# layout with a single site-packages), with `python -m wheelhouse install`. Cycles between
# packages need nothing: there are no per-package derivations to order.
let
  interp = import ./python.nix;
  toolLib = import ./tool.nix;
  lockLib = import ./lock.nix;
  sdists = import ./sdists.nix;
in
rec {
  /* The packages `fromNixpkgs` names, taken from `pythonPackages` (a nixpkgs-style python
     package set, e.g. `pkgs.python3.pkgs`) instead of the lock. Each must be a runtime package
     of the target (so nothing is silently added) and exist in the set.

     Type: nixpkgsPackages :: { lock :: AttrSet; target :: AttrSet; fromNixpkgs :: [ String ]; pythonPackages :: AttrSet; } -> [ { name :: String; package :: Derivation; } ]

     Example:
       nixpkgsPackages { inherit lock target; fromNixpkgs = [ "numpy" ]; pythonPackages = pkgs.python3.pkgs; }
       => [ { name = "numpy"; package = «derivation ...-python3.11-numpy-1.26.4.drv»; } ]
  */
  nixpkgsPackages = { lock, target, fromNixpkgs, pythonPackages }:
    let
      names = lockLib.artifactPackages lock;
      runtime = map (f: names.${f} or f) (target.artifacts or [ ]);
      pick = name:
        if !(builtins.elem (sdists.normalizeName name) runtime) then
          throw "nixlib: fromNixpkgs names ${builtins.toJSON name}, which target ${target.name} does not install (its packages: ${builtins.toJSON runtime})"
        else if !(pythonPackages ? ${name}) then
          throw "nixlib: fromNixpkgs names ${builtins.toJSON name}, which pythonPackages does not have${if pythonPackages == { } then " (pythonPackages is empty: pass e.g. pkgs.python3.pkgs)" else ""}"
        else { inherit name; package = pythonPackages.${name}; };
    in map pick fromNixpkgs;

  /* The `install` arguments of the RUNPATH pass: with `patchelf` (a derivation such as
     `pkgs.patchelf`, or a path to the program) every ELF file of the env gets a RUNPATH that
     finds its libraries in the interpreter's, the wheel's own (`$ORIGIN`) or `manylinuxLibs`
     (derivations, or paths: a prefix's `lib/` and the path itself are searched). Without
     `patchelf` there is no pass, and `manylinuxLibs` must be empty.

     Type: runpathArgs :: { patchelf :: Derivation | String | Path | null; manylinuxLibs :: [ Derivation | String | Path ]; } -> [ String ]

     Example:
       runpathArgs { patchelf = pkgs.patchelf; manylinuxLibs = [ pkgs.stdenv.cc.cc.lib pkgs.zlib ]; }
       => [ "--patchelf" "/nix/store/...-patchelf-0.15.0/bin/patchelf" "--library-path" "/nix/store/...-gcc-13.2.0-lib" "--library-path" "/nix/store/...-zlib-1.3.1" ]
  */
  runpathArgs = { patchelf, manylinuxLibs }:
    if patchelf == null then
      if manylinuxLibs == [ ] then [ ]
      else throw "nixlib: manylinuxLibs (${builtins.toJSON (map toString manylinuxLibs)}) needs patchelf: pass patchelf = pkgs.patchelf"
    else
      [ "--patchelf" (if builtins.isAttrs patchelf then "${patchelf}/bin/patchelf" else "${patchelf}") ]
      ++ builtins.concatMap (lib: [ "--library-path" "${lib}" ]) manylinuxLibs;

  /* Install a wheelhouse into `$out`: `$out/bin/python` imports every locked package and the
     console scripts sit in `$out/bin`. `built` (from `mkSdistWheels`) supplies wheels for the
     locked sdists. `fromNixpkgs` packages come from `pythonPackages` instead of the wheelhouse:
     one `.pth` file in the env's site-packages lists their site-packages directories.
     `patchelf` and `manylinuxLibs` run the RUNPATH pass (see `runpathArgs`), so manylinux
     wheels' extension modules load with nixpkgs' interpreter.

     Type: mkEnv :: { lock :: Path; python :: Derivation | String; tool :: Derivation; wheelhouse :: Derivation; name ? String; compile ? Bool; built ? Derivation | null; fromNixpkgs ? [ String ]; pythonPackages ? AttrSet; patchelf ? Derivation | String | null; manylinuxLibs ? [ Derivation | String | Path ]; } -> Derivation

     Example:
       mkEnv { lock = ./pylock.toml; python = pkgs.python3; inherit tool wheelhouse; }
       => «derivation /nix/store/...-python-env.drv»   # $out/bin/python -c 'import requests'
  */
  mkEnv = { lock, python, tool, wheelhouse, name ? "python-env", compile ? true, built ? null
          , fromNixpkgs ? [ ], pythonPackages ? { }, patchelf ? null, manylinuxLibs ? [ ] }:
    let
      py = interp.toInterpreter python;
      fromSet = nixpkgsPackages {
        lock = lockLib.readLock lock;
        target = wheelhouse.target;
        inherit fromNixpkgs pythonPackages;
      };
    in
    derivation {
      inherit name;
      system = py.system;
      builder = py.executable;
      args = toolLib.wheelhouseArgs tool
        ([ "install" lock "--wheelhouse" wheelhouse "--prefix" (builtins.placeholder "out")
           "--target" wheelhouse.target.name "--python" py.executable ]
             ++ (if compile then [ ] else [ "--no-compile" ])
             ++ (if built != null then [ "--built" built ] else [ ])
             ++ builtins.concatMap (p: [ "--exclude" p.name "--extra-site-packages" p.package ]) fromSet
             ++ runpathArgs { inherit patchelf manylinuxLibs; });
    } // { inherit wheelhouse; };
}
