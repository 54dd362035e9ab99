// The profile admin: show the fieldset of the selected auth type only, as the type
// changes. The server already renders the current type's fieldset alone (CSS hides the
// others), so without JavaScript the page is right after each save.
(function () {
  "use strict";
  function show(type) {
    document.querySelectorAll("fieldset.auth-type").forEach(function (fieldset) {
      fieldset.classList.toggle("auth-inactive", !fieldset.classList.contains("auth-" + type));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("id_snowflake_auth_type");
    if (!select) return;
    select.addEventListener("change", function () { show(select.value); });
  });
})();
