// Swagger UI for /docs, from the vendored bundle: no inline script (the CSP allows none), no
// online validator (no request leaves this origin).
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-ui-container",
    validatorUrl: null,
  });
});
