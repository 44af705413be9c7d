# Built with wheelhouse (written by `wheelhouse init --flake`, or `nix flake init -t`: then set
# `inputs.wheelhouse.url` to where wheelhouse lives):
#
#   nix develop                # python with every locked package, the project editable
#   nix build                  # the application: ./result/bin/<console script>
#   nix build .#bdist_wheel    # the project's wheel;  .#env: the dependencies only
{
  description = "A Python project built with wheelhouse";

  inputs.nixpkgs.url = "nixpkgs";
  inputs.wheelhouse.url = "@wheelhouse_url@";
  inputs.wheelhouse.inputs.nixpkgs.follows = "nixpkgs";

  outputs = { self, nixpkgs, wheelhouse }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAll = f: builtins.listToAttrs (map (system: {
        name = system;
        value = f nixpkgs.legacyPackages.${system};
      }) systems);
      project = pkgs: wheelhouse.lib.mkProject {
        src = ./.;
        lock = ./pylock.toml;
        python = pkgs.python3;
        cacert = pkgs.cacert;
        patchelf = pkgs.patchelf;
        manylinuxLibs = [ pkgs.stdenv.cc.cc.lib pkgs.zlib ];
        mkShell = pkgs.mkShell;
      };
    in
    {
      packages = forAll (pkgs: let p = project pkgs; in {
        default = p.build;
        inherit (p) env build bdist_wheel;
      });
      devShells = forAll (pkgs: { default = (project pkgs).develop; });
    };
}
