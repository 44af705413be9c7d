# The wheelhouse: ONE fixed-output derivation holding every artifact a lock target needs, fetched
# and sha256-checked by `python -m wheelhouse fetch`. Its NAR hash comes from the lock (computed by
# `wheelhouse lock`), so there is no fake-hash round trip.
let
  interp = import ./python.nix;
  lockLib = import ./lock.nix;
  toolLib = import ./tool.nix;
in
{
  /* Fetch a lock target's artifacts into one store path.

     Type: mkWheelhouse :: { lock :: Path; python :: Derivation | String; tool :: Derivation; target ? String | null; cacert ? Derivation | null; } -> Derivation

     `cacert` (nixpkgs' `pkgs.cacert`) supplies TLS roots; without it the build takes
     SSL_CERT_FILE / NIX_SSL_CERT_FILE from the caller's environment (impure variables, like
     nixpkgs' fetchurl). Credentials for private indexes come only through NETRC or
     WHEELHOUSE_AUTH in that environment, never through the derivation.

     Example:
       mkWheelhouse { lock = ./pylock.toml; python = pkgs.python3; tool = mkTool { python = pkgs.python3; }; }
       => «derivation /nix/store/...-wheelhouse-cp311-linux-x86_64-0f3a9c1d2b4e.drv»
  */
  mkWheelhouse = { lock, python, tool, target ? null, cacert ? null }:
    let
      py = interp.toInterpreter python;
      lockPath = toString lock;
      data = lockLib.readLock lock;
      chosen = lockLib.selectTarget {
        lock = data;
        inherit target lockPath;
        pythonVersion = py.version;
      };
      digest = lockLib.targetDigest { lock = data; target = chosen; inherit lockPath; };
      hash = chosen.wheelhouse-nar-hash or
        (throw "nixlib: target ${chosen.name} of ${lockPath} has no wheelhouse-nar-hash; regenerate the lock with `wheelhouse lock`");
    in
    derivation ({
      name = "wheelhouse-${chosen.name}-${digest}";
      system = py.system;
      builder = py.executable;
      args = toolLib.wheelhouseArgs tool
        [ "fetch" lock "--wheelhouse" (builtins.placeholder "out") "--target" chosen.name "--no-cache" ];
      outputHashMode = "recursive";
      outputHashAlgo = "sha256";
      outputHash = hash;
      impureEnvVars = [ "NETRC" "WHEELHOUSE_AUTH" "SSL_CERT_FILE" "NIX_SSL_CERT_FILE"
                        "http_proxy" "https_proxy" "HTTP_PROXY" "HTTPS_PROXY" "no_proxy" "NO_PROXY" ];
    } // (if cacert != null then { SSL_CERT_FILE = "${cacert}/etc/ssl/certs/ca-bundle.crt"; } else { }))
    // { target = chosen; };
}
