// Syntax highlighting for the diff viewer, loaded on demand (its own chunk).
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const LANGS = { bash, css, go, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, lang] of Object.entries(LANGS)) hljs.registerLanguage(name, lang);

const BY_EXT: Record<string, string> = {
  sh: "bash", bash: "bash", css: "css", scss: "css", go: "go", java: "java", js: "javascript",
  jsx: "javascript", mjs: "javascript", cjs: "javascript", json: "json", md: "markdown",
  py: "python", rs: "rust", sql: "sql", ts: "typescript", tsx: "typescript", html: "xml",
  xml: "xml", svg: "xml", yml: "yaml", yaml: "yaml", toml: "yaml",
};

export function languageFor(path: string): string | null {
  const ext = path.split(".").pop()?.toLowerCase() ?? "";
  return BY_EXT[ext] ?? null;
}

/** HTML for one line of code; highlight.js escapes the text it is given. */
export function highlightLine(text: string, language: string): string {
  return hljs.highlight(text, { language, ignoreIllegals: true }).value;
}
