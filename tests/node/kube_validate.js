// kube_validate.js FILE.yaml: check every document of `tanuki-svc export
// kubernetes` against the Kubernetes OpenAPI schema, as packaged by
// kubernetes-models (its validators are generated from the API's OpenAPI
// definitions: types, formats, required fields), and, as the API server's
// strict field validation does, refuse any field the schema does not
// define (the generated validators let unknown fields through, so the
// fields are walked along the package's type definitions, which come from
// the same OpenAPI document).
//
// Prints one line of JSON: {kind/name: document} for the test to look at;
// exits 1 with every problem on stderr.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const MODELS = path.dirname(require.resolve("kubernetes-models/package.json"));
const kinds = {
  "v1/PersistentVolumeClaim": "v1/PersistentVolumeClaim",
  "v1/Service": "v1/Service",
  "apps/v1/Deployment": "apps/v1/Deployment",
};

// ---- known fields, from the type definitions (.d.ts) ----
const cache = new Map();

function resolveDts(from, spec) {
  if (spec.startsWith(".")) return path.resolve(path.dirname(from), spec + ".d.ts");
  const parts = spec.split("/");
  const pkg = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  const rest = parts.slice(spec.startsWith("@") ? 2 : 1).join("/");
  // Packages by their folder (their "exports" hide package.json).
  const nested = path.join(MODELS, "node_modules", pkg);
  const root = fs.existsSync(nested) ? nested : path.join(path.dirname(MODELS), pkg);
  return path.join(root, rest + ".d.ts");
}

// {fields: {name: type}, imports: {Name: file}} of the interface in file,
// or null when the file declares no interface (a type alias: a leaf).
function typeOf(file) {
  if (cache.has(file)) return cache.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = {};
  for (const m of text.matchAll(/import \{ ([^}]+) \} from "([^"]+)";/g))
    for (const n of m[1].split(",")) imports[n.trim()] = resolveDts(file, m[2]);
  const body = /export interface \w+(?: extends [\w, ]+)? \{([\s\S]*?)\n\}/.exec(text);
  let t = null;
  if (body) {
    const fields = {};
    // One field a line; a map's type ("{ [key: string]: string; }") goes on
    // over the next lines and is a leaf here.
    for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: (.*?);?$/gm)) fields[m[1]] = m[2];
    t = { fields, imports };
  }
  cache.set(file, t);
  return t;
}

function check(value, file, where, problems) {
  const t = typeOf(file);
  if (!t || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const type = t.fields[k];
    if (type === undefined) {
      problems.push(`${where}.${k}: not a field of ${path.basename(file, ".d.ts")}`);
      continue;
    }
    const arr = /^Array<(\w+)>$/.exec(type);
    const name = arr ? arr[1] : type;
    const next = t.imports[name];
    if (!next) continue; // a string, number, map or literal
    if (arr && Array.isArray(v)) v.forEach((x, i) => check(x, next, `${where}.${k}[${i}]`, problems));
    else check(v, next, `${where}.${k}`, problems);
  }
}

// ---- main ----
const file = process.argv[2];
const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
const problems = [];
const out = {};
docs.forEach((d, i) => {
  if (d.errors.length) {
    problems.push(`document ${i + 1}: ${d.errors.map(String).join("; ")}`);
    return;
  }
  const obj = d.toJS();
  const key = `${obj.apiVersion}/${obj.kind}`;
  const mod = kinds[key];
  if (!mod) {
    problems.push(`document ${i + 1}: unexpected kind ${key}`);
    return;
  }
  const where = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
  const Cls = require(`kubernetes-models/${mod}`)[obj.kind];
  try {
    new Cls(obj).validate();
  } catch (e) {
    problems.push(`${where}: ${e.message}`);
  }
  check(obj, path.join(MODELS, mod + ".d.ts"), where, problems);
  out[where] = obj;
});
if (docs.length === 0) problems.push("no documents");
if (problems.length) {
  for (const p of problems) console.error("kube_validate: " + p);
  process.exit(1);
}
console.log(JSON.stringify(out));
