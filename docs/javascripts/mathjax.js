window.MathJax = {
  tex: {
    // \( \) and \[ \] are what pymdownx.arithmatex writes on the Markdown pages; the tutorials'
    // Markdown cells (rendered by mkdocs-jupyter) keep the $ and $$ their authors typed
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
