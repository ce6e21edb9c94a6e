// Loads web-xgrammar under Node and walks one JSON-Schema grammar over a package's vocabulary, printing how long a
// token's accept + next mask takes on the CPU (no GPU). A quick check that the grammar engine runs on a machine.
//   node scripts/check_xgrammar_node.mjs --package DIR [--tokens 128]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { package: { type: 'string' }, tokens: { type: 'string', default: '128' } } });
if (!args.package) throw new Error('--package DIR is required');
const { importVendor } = await import('../app/engine/vendor.js');
const { Grammars, GrammarSpec, vocabFromTokenizerJson } = await import('../app/engine/grammar.js');
const manifest = JSON.parse(readFileSync(`${args.package}/manifest.json`, 'utf8'));
const tokenizer = JSON.parse(readFileSync(`${args.package}/tokenizer.json`, 'utf8'));
const vendor = await importVendor();
if (!vendor.loadXgrammar) throw new Error('this vendor set has no grammar engine (@mlc-ai/web-xgrammar)');
const xg = await vendor.loadXgrammar();
console.error('web-xgrammar loaded');
const vocab = vocabFromTokenizerJson(tokenizer, manifest.config.vocab_size);
const grammars = await Grammars.create(xg, vocab, manifest.generation.eos_token_ids);
const spec = GrammarSpec.jsonSchema({ type: 'object', required: ['notes'], additionalProperties: false,
  properties: { notes: { type: 'string', minLength: 4000, maxLength: 8000 } } });
let t0 = performance.now();
await grammars.compile(spec);
const compileMs = performance.now() - t0;
const c = await grammars.constraint(spec);
const n = Number(args.tokens);
t0 = performance.now();
for (let i = 0; i < n; i++) {
  const mask = await c.bitmask();
  let id = 0;
  while (!(mask[id >>> 5] & (1 << (id & 31)))) id++;
  c.accept(id);
}
const perToken = (performance.now() - t0) / n;
console.log(JSON.stringify({ node: process.version, compile_ms: compileMs, cpu_mask_ms_per_token: perToken }));
