/* ganref site: settings for the ipywidgets embedder (copied into the site by ganref/pipeline/site.py). */
(function () {
  "use strict";
  // 1. require.js resolves the widget bundle's module id against this folder (_static/), so the
  //    bundle's web fonts load from here too, not from <page folder>/@jupyter-widgets/....
  var here = document.currentScript.src.replace(/\/[^\/]*$/, "");
  window.require = { paths: { "@jupyter-widgets/html-manager/dist": here } };
  // 2. The embedder typesets widget labels with MathJax 2's MathJax.Hub.Queue, but the book
  //    loads MathJax 3: hand that call to MathJax 3 once the deferred MathJax script has run.
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;
    mj.Hub = {
      Queue: function (job) {
        var node = job && job[2];
        var ready = mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
        ready.then(function () {
          return mj.typesetPromise ? mj.typesetPromise(node ? [node] : undefined) : null;
        }).catch(function (err) { console.warn("MathJax could not typeset a widget label", err); });
      },
    };
  });
})();
