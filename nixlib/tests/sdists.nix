# Tests for ../sdists.nix (pure parts): name normalisation, which runtime packages are sdists, and
# the overrides document handed to `wheelhouse build-sdists`.
let
  lib = import ../sdists.nix;
  lock = {
    lock-version = "1.0";
    packages = [
      { name = "docopt"; version = "0.6.2"; sdist = { name = "docopt-0.6.2.tar.gz"; hashes.sha256 = "aa"; }; }
      { name = "idna"; version = "3"; wheels = [ { name = "idna-3-py3-none-any.whl"; hashes.sha256 = "bb"; } ]; }
      { name = "tinyhelper"; version = "1"; sdist = { url = "https://x/tinyhelper-1.tar.gz"; hashes.sha256 = "cc"; }; }
    ];
  };
  target = {
    name = "cp311-linux-x86_64";
    artifacts = [ "docopt-0.6.2.tar.gz" "idna-3-py3-none-any.whl" ];
    build-artifacts = [ "tinyhelper-1.tar.gz" ];
  };
  fakeDrv = name: { type = "derivation"; outPath = "/nix/store/fake-${name}"; };
  multiOutput = (fakeDrv "postgresql") // { dev = fakeDrv "postgresql-dev"; bin = fakeDrv "postgresql-bin"; };
in
{
  isolationArgsPassTheMode = {
    expr = map lib.isolationArgs [ "auto" "namespace" "advisory" ];
    expected = [ [ "--isolation" "auto" ] [ "--isolation" "namespace" ] [ "--isolation" "advisory" ] ];
  };
  normalizeNameFollowsPep503 = {
    expr = map lib.normalizeName [ "Foo_Bar.baz" "PyYAML" "a--b__c" "zope.interface" ];
    expected = [ "foo-bar-baz" "pyyaml" "a-b-c" "zope-interface" ];
  };
  targetSdistsAreRuntimeSdistsOnly = {
    expr = lib.targetSdists { inherit lock target; };
    expected = [ { name = "docopt"; file = "docopt-0.6.2.tar.gz"; } ];
  };
  inputPathsOfPlainPrefix = {
    expr = lib.inputPaths [ "/usr" ];
    expected = { path = [ "/usr/bin" ]; pkg_config_path = [ "/usr/lib/pkgconfig" "/usr/share/pkgconfig" ]; };
  };
  inputPathsUseBinAndDevOutputs = {
    expr = lib.inputPaths [ multiOutput ];
    expected = {
      path = [ "/nix/store/fake-postgresql-bin/bin" ];
      pkg_config_path = [ "/nix/store/fake-postgresql-dev/lib/pkgconfig" "/nix/store/fake-postgresql-dev/share/pkgconfig" ];
    };
  };
  buildOverridesDocument = {
    expr = lib.buildOverrides {
      sdists = [ "psycopg2" "PyYAML" ];
      buildInputs = [ "/usr" ];
      overrides = {
        psycopg2 = { nativeBuildInputs = [ multiOutput ]; env = { PG_CONFIG = "/x/pg_config"; JOBS = 2; }; };
        pyyaml.env.PYYAML_FORCE_CYTHON = "1";
      };
    };
    expected = {
      path = [ "/usr/bin" ];
      pkg_config_path = [ "/usr/lib/pkgconfig" "/usr/share/pkgconfig" ];
      env = { };
      packages = {
        psycopg2 = {
          path = [ "/nix/store/fake-postgresql-bin/bin" ];
          pkg_config_path = [ "/nix/store/fake-postgresql-dev/lib/pkgconfig" "/nix/store/fake-postgresql-dev/share/pkgconfig" ];
          env = { PG_CONFIG = "/x/pg_config"; JOBS = "2"; };
        };
        pyyaml = { path = [ ]; pkg_config_path = [ ]; env = { PYYAML_FORCE_CYTHON = "1"; }; };
      };
    };
  };
}
