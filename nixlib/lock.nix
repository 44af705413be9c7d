# Reading pylock.toml with builtins only (no IFD): the target to build, its artifacts, and the
# digest that names the wheelhouse derivation.
let
  inherit (builtins) filter length head concatStringsSep map hashString substring
    listToAttrs concatMap elem toJSON split isList elemAt;

  # A bare TOML date, date-time or time as the value of a key (`upload-time = 2025-01-02T03:04:05Z`,
  # also inside inline tables); group 1 is everything before the value, group 3 the value.
  datetimeValue =
    "((^|[\n{,])[ \t]*[A-Za-z0-9_-]+[ \t]*=[ \t]*)"
    + "([0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
    + "|[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?)";
in
rec {
  /* TOML text with every bare date/time value of a key turned into a string. Nix's
     `builtins.fromTOML` (2.8 and later) rejects dates and times, and uv writes `upload-time`
     datetimes into its locks; no other value changes. (A datetime inside an array is not
     rewritten: no lock format writes one.)

     Type: quoteDatetimes :: String -> String

     Example:
       quoteDatetimes "x = { upload-time = 2025-01-02T03:04:05Z, size = 3 }"
       => "x = { upload-time = \"2025-01-02T03:04:05Z\", size = 3 }"
  */
  quoteDatetimes = text:
    concatStringsSep "" (map
      (part: if isList part then "${elemAt part 0}\"${elemAt part 2}\"" else part)
      (split datetimeValue text));

  /* Parse a pylock.toml file (any tool's: TOML datetimes are read as strings).

     Type: readLock :: Path -> AttrSet

     Example:
       (readLock ./pylock.toml).lock-version
       => "1.0"
  */
  readLock = path:
    let data = builtins.fromTOML (quoteDatetimes (builtins.readFile path));
    in if data ? lock-version then data
       else throw "nixlib: ${toString path} is not a pylock.toml (no lock-version key)";

  /* The `[[tool.wheelhouse.targets]]` entry to build: the one named `target`, else the only one,
     else the one whose python-version equals `pythonVersion`.

     Type: selectTarget :: { lock :: AttrSet; target :: String | null; pythonVersion :: String | null; lockPath :: String; } -> AttrSet

     Example:
       (selectTarget { lock = readLock ./pylock.toml; target = null; pythonVersion = "3.11"; lockPath = "pylock.toml"; }).name
       => "cp311-linux-x86_64"
  */
  selectTarget = { lock, target ? null, pythonVersion ? null, lockPath ? "pylock.toml" }:
    let
      targets = lock.tool.wheelhouse.targets or
        (throw "nixlib: ${lockPath} has no [tool.wheelhouse] targets (it was created by ${lock.created-by or "another tool"}); add them, keeping every pin, with `wheelhouse lock --from ${lockPath} --python <the env's interpreter> -o ${lockPath}`");
      names = toJSON (map (t: t.name) targets);
      byName = filter (t: t.name == target) targets;
      byVersion = filter (t: t.python-version == pythonVersion) targets;
      chosen =
        if target != null then
          (if byName != [] then head byName
           else throw "nixlib: ${lockPath} has no target ${toJSON target} (targets: ${names})")
        else if length targets == 1 then head targets
        else if byVersion != [] then head byVersion
        else throw "nixlib: ${lockPath} has several targets ${names}; pass `target`";
    in
      if pythonVersion != null && chosen.python-version != pythonVersion then
        throw "nixlib: target ${chosen.name} of ${lockPath} is for Python ${chosen.python-version}, but the interpreter is Python ${pythonVersion}"
      else chosen;

  /* Every artifact the lock lists, keyed by file name, with its sha256.

     Type: artifactHashes :: AttrSet -> AttrSet

     Example:
       (artifactHashes (readLock ./pylock.toml))."idna-3.10-py3-none-any.whl"
       => "46f0..."
  */
  artifactHashes = lock:
    let
      files = p: (p.wheels or [ ]) ++ (if p ? sdist then [ p.sdist ] else [ ]);
      fileName = f: f.name or (baseNameOf (f.url or f.path));
    in listToAttrs (concatMap
      (p: map (f: { name = fileName f; value = f.hashes.sha256 or (throw "nixlib: ${fileName f} of package ${p.name} has no sha256 hash"); }) (files p))
      (lock.packages or [ ]));

  /* Every artifact the lock lists, keyed by file name, with its package's name.

     Type: artifactPackages :: AttrSet -> AttrSet

     Example:
       (artifactPackages (readLock ./pylock.toml))."idna-3.10-py3-none-any.whl"
       => "idna"
  */
  artifactPackages = lock:
    let
      files = p: (p.wheels or [ ]) ++ (if p ? sdist then [ p.sdist ] else [ ]);
      fileName = f: f.name or (baseNameOf (f.url or f.path));
    in listToAttrs (concatMap
      (p: map (f: { name = fileName f; value = p.name; }) (files p))
      (lock.packages or [ ]));

  /* Short digest of what a target's wheelhouse holds (file names and their sha256 from
     [[packages]]). It goes into the fixed-output derivation's name, so editing the locked set
     without refreshing the NAR hash makes Nix build anew (and fail loudly) instead of silently
     reusing an old store path.

     Type: targetDigest :: { lock :: AttrSet; target :: AttrSet; lockPath :: String; } -> String

     Example:
       targetDigest { inherit lock target; }
       => "0f3a9c1d2b4e"
  */
  targetDigest = { lock, target, lockPath ? "pylock.toml" }:
    let
      hashes = artifactHashes lock;
      files = (target.artifacts or [ ]) ++ (target.build-artifacts or [ ]);
      line = f: "${f} ${hashes.${f} or (throw "nixlib: target ${target.name} of ${lockPath} names ${f}, which no [[packages]] entry lists; regenerate the lock with `wheelhouse lock`")}";
    in substring 0 12 (hashString "sha256" (concatStringsSep "\n" (map line files)));
}
