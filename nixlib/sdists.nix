# Building sdists: ONE derivation between the wheelhouse and the env, running
# `python -m wheelhouse build-sdists`. Every sdist of the target is built offline, each in an
# environment holding exactly its locked build requirements (from the wheelhouse), so there is
# still no per-package derivation; `mkEnv { built = ...; }` then installs the wheels it made.
let
  interp = import ./python.nix;
  toolLib = import ./tool.nix;
  lockLib = import ./lock.nix;
  inherit (builtins) attrNames concatMap elem filter isAttrs isString isPath isList listToAttrs
    mapAttrs replaceStrings toJSON typeOf;
in
rec {
  /* PEP 503 name normalisation (lower case, runs of `-`, `_`, `.` become one `-`), so names a
     user writes match the lock's.

     Type: normalizeName :: String -> String

     Example:
       normalizeName "Foo_Bar.baz"
       => "foo-bar-baz"
  */
  normalizeName = name:
    let
      upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
      lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
      dashed = replaceStrings [ "_" "." ] [ "-" "-" ] (replaceStrings upper lower name);
      collapse = s: let t = replaceStrings [ "--" ] [ "-" ] s; in if t == s then s else collapse t;
    in collapse dashed;

  /* The runtime packages of a target that are locked as sdists (what needs building), as
     `{ name; file; }`, in the target's artifact order.

     Type: targetSdists :: { lock :: AttrSet; target :: AttrSet; } -> [ { name :: String; file :: String; } ]

     Example:
       targetSdists { inherit lock target; }
       => [ { name = "docopt"; file = "docopt-0.6.2.tar.gz"; } ]
  */
  targetSdists = { lock, target }:
    let
      sdistOf = p: if p ? sdist then [ { name = p.sdist.name or (baseNameOf (p.sdist.url or p.sdist.path)); value = p.name; } ] else [ ];
      byFile = listToAttrs (concatMap sdistOf (lock.packages or [ ]));
    in map (f: { name = byFile.${f}; file = f; }) (filter (f: byFile ? ${f}) (target.artifacts or [ ]));

  /* Store paths (derivations) or plain paths to the strings the builder needs: `bin` dirs for
     PATH and pkg-config dirs (of the `dev` output when there is one).

     Type: inputPaths :: [ Derivation | String | Path ] -> { path :: [ String ]; pkg_config_path :: [ String ]; }

     Example:
       inputPaths [ "/usr" ]
       => { path = [ "/usr/bin" ]; pkg_config_path = [ "/usr/lib/pkgconfig" "/usr/share/pkgconfig" ]; }
  */
  inputPaths = inputs:
    let
      check = d:
        if isAttrs d || isString d || isPath d then d
        else throw "nixlib: a build input must be a derivation or a path, got a ${typeOf d}: ${toJSON d}";
      binOf = d: if isAttrs d then "${d.bin or d.out or d}/bin" else "${d}/bin";
      devOf = d: if isAttrs d then "${d.dev or d.out or d}" else "${d}";
    in {
      path = map (d: binOf (check d)) inputs;
      pkg_config_path = concatMap (d: [ "${devOf (check d)}/lib/pkgconfig" "${devOf d}/share/pkgconfig" ]) inputs;
    };

  /* The overrides document `wheelhouse build-sdists --overrides` reads: `buildInputs` for every
     build, and per package `nativeBuildInputs` (PATH, PKG_CONFIG_PATH) and `env` (variables).
     Only packages in `sdists` (normalised names) may be overridden: a typo would otherwise be
     silently ignored.

     Type: buildOverrides :: { overrides ? AttrSet; buildInputs ? [ Derivation | String ]; sdists :: [ String ]; } -> AttrSet

     Example:
       buildOverrides { sdists = [ "psycopg2" ]; buildInputs = [ "/usr" ]; overrides.psycopg2 = { nativeBuildInputs = [ pkgs.postgresql ]; env.PG_CONFIG = "..."; }; }
       => { path = [ "/usr/bin" ]; pkg_config_path = [ ... ]; env = { }; packages.psycopg2 = { path = [ ".../bin" ]; pkg_config_path = [ ... ]; env.PG_CONFIG = "..."; }; }
  */
  buildOverrides = { overrides ? { }, buildInputs ? [ ], sdists }:
    let
      known = map normalizeName sdists;
      checkList = what: v:
        if isList v then v else throw "nixlib: ${what} must be a list, got a ${typeOf v}";
      one = name: o:
        let
          unknownKeys = filter (k: !(elem k [ "nativeBuildInputs" "env" ])) (attrNames o);
          env = mapAttrs (k: v:
            if isString v || isPath v || isAttrs v || builtins.isInt v then "${toString v}"
            else throw "nixlib: overrides.${name}.env.${k} must be a string, got a ${typeOf v}")
            (o.env or { });
        in
          if !(isAttrs o) then throw "nixlib: overrides.${name} must be an attribute set, got a ${typeOf o}"
          else if unknownKeys != [ ] then
            throw "nixlib: overrides.${name} has unknown attributes ${toJSON unknownKeys}; allowed: nativeBuildInputs, env"
          else if !(elem (normalizeName name) known) then
            throw "nixlib: overrides.${name}: ${name} is not built from an sdist in this lock target (sdists: ${toJSON sdists})"
          else inputPaths (checkList "overrides.${name}.nativeBuildInputs" (o.nativeBuildInputs or [ ])) // { inherit env; };
    in inputPaths (checkList "buildInputs" buildInputs) // {
      env = { };
      packages = mapAttrs one overrides;
    };

  /* The `--isolation` arguments of `build-sdists` and `build-project`: how backends are kept off
     the network. "auto": new user and network namespaces where the OS allows (inside the Nix
     sandbox too), else the advisory block; "namespace": required, the build fails where the OS
     forbids them; "advisory": the advisory block only (proxies, PIP_NO_INDEX, a socket hook).

     Type: isolationArgs :: String -> [ String ]

     Example:
       isolationArgs "namespace"
       => [ "--isolation" "namespace" ]
  */
  isolationArgs = isolation:
    if elem isolation [ "auto" "namespace" "advisory" ] then [ "--isolation" isolation ]
    else throw "nixlib: isolation = ${toJSON isolation} is not one of \"auto\", \"namespace\", \"advisory\"";

  /* Build every sdist a lock target installs into wheels: ONE derivation whose `$out` holds only
     the built wheels. Builds run offline (each backend in its own network namespace where the OS
     allows, see `isolationArgs`; the advisory block always) with `SOURCE_DATE_EPOCH` fixed. `buildInputs` (e.g. `[ pkgs.stdenv.cc pkgs.pkg-config ]`, or a
     plain prefix like `"/usr"`) are on PATH for every build; `overrides` adds inputs and
     variables to one package's build. `exclude` names runtime packages not to build (taken from
     nixpkgs instead).

     Type: mkSdistWheels :: { lock :: Path; python :: Derivation | String; tool :: Derivation; wheelhouse :: Derivation; overrides ? AttrSet; buildInputs ? [ Derivation | String ]; exclude ? [ String ]; jobs ? Int; isolation ? String; } -> Derivation

     Example:
       mkSdistWheels { lock = ./pylock.toml; python = pkgs.python3; inherit tool wheelhouse;
                       buildInputs = [ pkgs.stdenv.cc pkgs.pkg-config ];
                       overrides.psycopg2.nativeBuildInputs = [ pkgs.postgresql ]; }
       => «derivation /nix/store/...-sdist-wheels-cp311-linux-x86_64.drv»
  */
  mkSdistWheels = { lock, python, tool, wheelhouse, overrides ? { }, buildInputs ? [ ], exclude ? [ ], jobs ? 2
                  , isolation ? "auto" }:
    let
      py = interp.toInterpreter python;
      target = wheelhouse.target;
      sdists = map (s: s.name) (targetSdists { lock = lockLib.readLock lock; inherit target; });
      document = buildOverrides { inherit overrides buildInputs sdists; };
    in
    derivation {
      name = "sdist-wheels-${target.name}";
      system = py.system;
      builder = py.executable;
      args = toolLib.wheelhouseArgs tool
        ([ "build-sdists" lock "--wheelhouse" wheelhouse "--output" (builtins.placeholder "out")
           "--target" target.name "--python" py.executable "--jobs" (toString jobs)
           "--overrides" "@env:overridesJsonPath" ]
         ++ concatMap (n: [ "--exclude" n ]) exclude
         ++ isolationArgs isolation);
      overridesJson = toJSON document;
      passAsFile = [ "overridesJson" ];
    } // { inherit target; };
}
