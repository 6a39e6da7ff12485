import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into the Python package; `codeyard serve` serves it at `/` (SPA fallback to index.html).
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../codeyard/web",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: { "/api": { target: "http://127.0.0.1:8420", changeOrigin: false } },
  },
});
