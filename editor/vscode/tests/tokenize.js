// Tokenises .tl files with the extension's TextMate grammar, as VS Code does (vscode-textmate and
// vscode-oniguruma, which vscode-tmgrammar-test brings), and prints JSON:
//   {"path": [[{"start": col, "end": col, "scopes": [...]}, ...one list per line...], ...}
// Used by tests/test_editor_vscode.py to compare the grammar's scopes with the real parser's tokens.
"use strict";

const fs = require("fs");
const path = require("path");
const tm = require("vscode-textmate");
const onig = require("vscode-oniguruma");

async function main(files) {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm")).buffer;
  await onig.loadWASM(wasm);
  const grammarPath = path.join(__dirname, "..", "syntaxes", "tensorlogic.tmLanguage.json");
  const registry = new tm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new onig.OnigScanner(sources),
      createOnigString: (s) => new onig.OnigString(s),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === "source.tensorlogic"
        ? tm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath)
        : null,
  });
  const grammar = await registry.loadGrammar("source.tensorlogic");
  const out = {};
  for (const file of files) {
    let stack = tm.INITIAL;
    out[file] = fs.readFileSync(file, "utf8").split("\n").map((line) => {
      const r = grammar.tokenizeLine(line.replace(/\r$/, ""), stack);
      stack = r.ruleStack;
      return r.tokens.map((t) => ({ start: t.startIndex, end: t.endIndex, scopes: t.scopes }));
    });
  }
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
