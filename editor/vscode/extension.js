// Tensor Logic for VS Code: starts the tensor logic language server (`tl lsp`, stdio) for .tl files.
// Plain CommonJS, no build step: vsce packages vscode-languageclient from node_modules with it.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverCommand() {
  const config = vscode.workspace.getConfiguration("tensorlogic");
  const cmd = config.get("server.command") || ["tl", "lsp"];
  return { command: cmd[0], args: cmd.slice(1) };
}

async function start(context) {
  if (!vscode.workspace.getConfiguration("tensorlogic").get("server.enabled", true)) {
    return;
  }
  const { command, args } = serverCommand();
  const run = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient(
    "tensorlogic",
    "Tensor Logic",
    { run, debug: run },
    { documentSelector: [{ language: "tensorlogic" }] }
  );
  try {
    await client.start();
  } catch (err) {
    client = undefined;
    vscode.window.showWarningMessage(
      `Tensor Logic: could not start the language server '${command} ${args.join(" ")}' (${err}). ` +
        "Install tensorlogic (pip install -e .) or set tensorlogic.server.command."
    );
  }
}

async function activate(context) {
  await start(context);
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("tensorlogic.server")) {
        await deactivate();
        await start(context);
      }
    })
  );
}

async function deactivate() {
  if (client) {
    const c = client;
    client = undefined;
    await c.stop();
  }
}

module.exports = { activate, deactivate };
