# wheelhouse as a flake: `lib` (nixlib), the tool as a package and an app, and a template.
#
#   nix run .#wheelhouse -- lock .            # the CLI (flakes need: --extra-experimental-features 'nix-command flakes')
#   nix flake init -t <this flake>#project     # a project's flake.nix and default.nix
#
# Evaluation is pure: every derivation takes `system` from the interpreter (nixpkgs' python3).
{
  description = "Lock Python requirements to PEP 751 pylock.toml and build them with Nix: one wheelhouse, one env";

  inputs.nixpkgs.url = "nixpkgs";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAll = f: builtins.listToAttrs (map (system: {
        name = system;
        value = f nixpkgs.legacyPackages.${system};
      }) systems);
    in
    {
      lib = import ./nixlib;

      packages = forAll (pkgs: rec {
        wheelhouse = self.lib.mkTool { python = pkgs.python3; };
        default = wheelhouse;
      });

      apps = forAll (pkgs: rec {
        wheelhouse = {
          type = "app";
          program = "${self.lib.mkTool { python = pkgs.python3; }}/bin/wheelhouse";
        };
        default = wheelhouse;
      });

      templates = rec {
        project = {
          path = ./wheelhouse/templates/project;
          description = "A Python project built with wheelhouse: env, build, bdist_wheel, develop";
        };
        default = project;
      };
    };
}
