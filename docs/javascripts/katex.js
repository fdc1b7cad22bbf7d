// Renders the formulas of pymdownx.arithmatex (generic mode: \( \) inline, \[ \] display)
// with the KaTeX bundled in javascripts/katex/, so the site needs no network to show them.
// Each page load (and each page of Material's instant navigation) renders its .arithmatex
// elements; a formula KaTeX cannot parse is shown as its TeX source in red, not dropped.
document$.subscribe(() => {
  for (const element of document.querySelectorAll(".arithmatex")) {
    const tex = element.textContent.trim();
    const display = tex.startsWith("\\[");
    katex.render(tex.slice(2, -2), element, { displayMode: display, throwOnError: false });
  }
});
