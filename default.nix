# wheelhouse: the tool and its Nix library.
#
#   nix-build -A tool                         # the wheelhouse CLI: ./result/bin/wheelhouse
#   (import ./. { python = pkgs.python3; }).lib.mkProject { lock = ./pylock.toml; ... }
#
# `python` is any interpreter derivation (nixpkgs' `pkgs.python3`) or a path to one. Default:
# nixpkgs' python3 when <nixpkgs> is on NIX_PATH, else the host's /usr/bin/python3.
{ python ? (if builtins.any (e: e.prefix == "nixpkgs") builtins.nixPath
            then (import <nixpkgs> { }).python3 else "/usr/bin/python3") }:
let
  lib = import ./nixlib;
in
{
  inherit lib;
  tool = lib.mkTool { inherit python; };
}
