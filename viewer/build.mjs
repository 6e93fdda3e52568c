// Builds the viewer into Django's static files (imaging/static/imaging/viewer/, committed):
// the page's module (viewer.js) and its chunks beside it, the image loader's decoding worker
// beside them (it is started as
// new URL("./decodeImageFrameWorker.js", import.meta.url)), and the codecs' WebAssembly
// in codecs/ (the loader's wasmBasePath). `node build.mjs OUTDIR` builds elsewhere (the check).
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const out = resolve(process.argv[2] || join(here, "..", "imaging", "static", "imaging", "viewer"));

// The codecs the decoding worker loads, by the file names it asks wasmBasePath for.
const CODECS = [
  "@cornerstonejs/codec-charls/decodewasm",
  "@cornerstonejs/codec-openjpeg/decodewasm",
  "@cornerstonejs/codec-libjxl/decodewasm",
  "@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm",
  "@cornerstonejs/codec-openjph/wasm",
];

const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  plugins: [nodeBuiltinsAbsent()],
};

// The emscripten glue and xmlbuilder2 (through @cornerstonejs/tools) require Node's modules,
// on paths a browser never takes; some at load. They get an empty stand-in (events: a class to
// extend) rather than a require that throws.
function nodeBuiltinsAbsent() {
  const names = /^(node:)?(fs|path|crypto|module|worker_threads|url|events|util|os|stream|buffer)$/;
  return {
    name: "node-builtins-absent",
    setup(builder) {
      builder.onResolve({ filter: names }, (args) => ({ path: args.path, namespace: "node-builtin-absent" }));
      builder.onLoad({ filter: /.*/, namespace: "node-builtin-absent" }, () => ({
        contents: "class EventEmitter {}\nmodule.exports = { EventEmitter };",
        loader: "js",
      }));
    },
  };
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "codecs"), { recursive: true });
// Split: viewer.js holds what draws the first image (main.js: Cornerstone's core and the image
// loader, in a chunk it imports); the tools, dcmjs and the features come in the chunks that
// main.js import()s once that image is on screen (viewer_rest.js). The chunks sit beside
// viewer.js (import.meta.url of the loader's code must find the worker and codecs/ there), named
// by their content's hash: the same sources give the same names and bytes (make viewer-check),
// and a changed chunk gets a new name, so a browser never mixes an old chunk with a new entry.
await build({
  ...common,
  entryPoints: { viewer: join(here, "src", "main.js") },
  splitting: true,
  outdir: out,
  entryNames: "[name]",
  chunkNames: "chunk-[hash]",
});
await build({
  ...common,
  entryPoints: [join(here, "node_modules", "@cornerstonejs", "dicom-image-loader", "dist", "esm", "decodeImageFrameWorker.js")],
  outfile: join(out, "decodeImageFrameWorker.js"),
});
for (const codec of CODECS) {
  const file = require.resolve(codec);
  copyFileSync(file, join(out, "codecs", file.split("/").pop()));
}
