# Tests for ../image.nix (pure parts; the image derivation is built by tests/test_image_nix.py).
let
  lib = import ../image.nix;
  base = { name = "app"; tag = "1"; imagePrefix = null; entrypoint = null; cmd = [ ]; env = { }; labels = { };
           user = null; workdir = "/"; extraPaths = [ ]; maxLayers = 100; layers = [ ];
           format = "oci"; compression = null; };
  args = lib.imageArgs (base // {
    entrypoint = [ "/app/bin/serve" "--fast" ]; cmd = [ "x" ]; env = { LANG = "C.UTF-8"; };
    user = "1000"; extraPaths = [ "/usr/bin/python3" ]; imagePrefix = "/opt/app"; });
  specArgs = lib.imageArgs (base // { layers = [ [ "zope-interface" "btrees" ] [ "plone" ] ]; });
in
{
  defaultsNameTheImageOnly = {
    expr = lib.imageArgs base;
    expected = [ "--name" "app" "--tag" "1" "--workdir" "/" "--max-layers" "100" "--format" "oci" ];
  };
  optionsBecomeRepeatedFlags = {
    expr = builtins.genList (i: builtins.elemAt args (i + 10)) 14;
    expected = [ "--entrypoint" "/app/bin/serve" "--entrypoint" "--fast" "--cmd" "x"
                 "--env" "LANG=C.UTF-8" "--user" "1000" "--image-prefix" "/opt/app"
                 "--extra-path" "/usr/bin/python3" ];
  };
  # (its content, one line per layer, is checked by tests/test_image_nix.py: --eval cannot
  # read a builtins.toFile path it did not write)
  layerSpecIsPassedAsAFile = {
    expr = [ (builtins.elemAt specArgs 10)
             (builtins.match "/nix/store/[a-z0-9]+-layers.txt" (builtins.elemAt specArgs 11) != null) ];
    expected = [ "--layers" true ];
  };
  badFormatThrows = {
    expr = (builtins.tryEval (lib.imageArgs (base // { format = "tar"; }))).success;
    expected = false;
  };
}
