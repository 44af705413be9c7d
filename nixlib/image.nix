# The image: ONE derivation that turns an env into a layered OCI image with
# `python -m wheelhouse image` (no nixpkgs, no docker daemon). One layer per installed package
# (from each `.dist-info/RECORD`), one per store path of the interpreter's closure (from
# `exportReferencesGraph`), a top layer for the env's own files; byte-reproducible.
let
  interp = import ./python.nix;
  toolLib = import ./tool.nix;
in
rec {
  /* The `wheelhouse image` arguments for the options of `mkImage` (everything but the env,
     the output and the closure file).

     Type: imageArgs :: { name :: String; tag :: String; imagePrefix :: String | null; entrypoint :: [String] | null; cmd :: [String]; env :: AttrSet; labels :: AttrSet; user :: String | null; workdir :: String; extraPaths :: [String]; maxLayers :: Int; layers :: [[String]]; format :: String; compression :: String | null; } -> [String]

     Example:
       imageArgs { name = "app"; tag = "1"; imagePrefix = null; entrypoint = [ "/app/bin/serve" ]; cmd = [ ]; env = { }; labels = { }; user = null; workdir = "/"; extraPaths = [ ]; maxLayers = 100; layers = [ ]; format = "oci"; compression = null; }
       => [ "--name" "app" "--tag" "1" "--workdir" "/" "--max-layers" "100" "--format" "oci" "--entrypoint" "/app/bin/serve" ]
  */
  imageArgs = { name, tag, imagePrefix, entrypoint, cmd, env, labels, user, workdir, extraPaths, maxLayers
              , layers, format, compression }:
    let
      formats = [ "oci" "docker-archive" ];
      pairs = flag: set: builtins.concatMap (k: [ flag "${k}=${set.${k}}" ]) (builtins.attrNames set);
      many = flag: builtins.concatMap (v: [ flag v ]);
    in
    if !(builtins.elem format formats) then
      throw "nixlib: mkImage format ${builtins.toJSON format} is not one of ${builtins.toJSON formats}"
    else if !(builtins.isInt maxLayers) || maxLayers < 2 then
      throw "nixlib: mkImage maxLayers must be an integer of at least 2, got ${builtins.toJSON maxLayers}"
    else
      [ "--name" name "--tag" tag "--workdir" workdir "--max-layers" (toString maxLayers)
        "--format" format ]
      ++ (if entrypoint == null then [ ] else many "--entrypoint" entrypoint)
      ++ many "--cmd" cmd
      ++ pairs "--env" env
      ++ pairs "--label" labels
      ++ (if user == null then [ ] else [ "--user" user ])
      ++ (if imagePrefix == null then [ ] else [ "--image-prefix" imagePrefix ])
      ++ (if compression == null then [ ] else [ "--compression" compression ])
      ++ many "--extra-path" (map toString extraPaths)
      ++ (if layers == [ ] then [ ]
          else [ "--layers" (builtins.toFile "layers.txt"
                   (builtins.concatStringsSep "\n" (map (builtins.concatStringsSep " ") layers) + "\n")) ]);

  /* A layered OCI image layout (`format = "docker-archive"`: a tar for `docker load`) of an
     env. The interpreter's runtime closure comes from `exportReferencesGraph` on the env, one
     layer per store path; an interpreter outside the store (the host's `/usr/bin/python3`) has
     to be listed in `extraPaths` (its files, libraries and loader; one layer). `layers` groups
     packages that change together into one layer, below the others. The env's files go to
     `imagePrefix` (default `/opt/<name>`; its store path becomes a symlink to it): a store
     path changes with every pin, and layers naming it would all change with it; `null` keeps
     the store path. `app` (`mkProject`'s `build`: the project installed over the env) makes
     the image of the application: its closure, read from `app`, holds the env (layered as
     above) and the app prefix itself, which becomes one layer of its own.

     Type: mkImage :: { env :: Derivation; python :: Derivation | String; tool :: Derivation; app ? Derivation | null; name ? String; tag ? String; imagePrefix ? String | null; entrypoint ? [String] | null; cmd ? [String]; imageEnv ? AttrSet; labels ? AttrSet; user ? String | null; workdir ? String; extraPaths ? [String]; maxLayers ? Int; layers ? [[String]]; format ? String; compression ? String | null; sourceDateEpoch ? Int; } -> Derivation

     Example:
       mkImage { env = project.env; python = pkgs.python3; tool = project.tool;
                 entrypoint = [ "${project.env}/bin/runwsgi" ]; cmd = [ "/etc/zope.ini" ]; }
       => «derivation /nix/store/...-python-env-image.drv»   # skopeo copy oci:./result:latest ...
  */
  mkImage = { env, python, tool, app ? null, name ? env.name or "python-env", tag ? "latest"
            , imagePrefix ? "/opt/${name}"
            , entrypoint ? null, cmd ? [ ], imageEnv ? { }, labels ? { }, user ? null
            , workdir ? "/", extraPaths ? [ ], maxLayers ? 100, layers ? [ ], format ? "oci"
            , compression ? null, sourceDateEpoch ? 0 }:
    let
      py = interp.toInterpreter python;
    in
    derivation {
      name = "${name}-image${if format == "docker-archive" then ".tar" else ""}";
      system = py.system;
      builder = py.executable;
      exportReferencesGraph = [ "closure" (if app == null then env else app) ];
      SOURCE_DATE_EPOCH = toString sourceDateEpoch;
      args = toolLib.wheelhouseArgs tool
        ([ "image" env "--output" (builtins.placeholder "out") "--closure" "closure" ]
         ++ imageArgs { inherit name tag imagePrefix entrypoint cmd labels user workdir extraPaths maxLayers
                               layers format compression;
                        env = imageEnv; });
    } // { inherit env app; };
}
