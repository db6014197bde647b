// The console's one script: "Copy" buttons beside the secrets a page shows
// once. Loaded from the binary with `defer` (the policy allows scripts from
// 'self' only, never inline). Without it the buttons stay `hidden` and each
// secret is plain selectable text; nothing else on any page needs it.
(function () {
  'use strict';
  var buttons = document.querySelectorAll('button[data-copy]');
  if (!navigator.clipboard || !navigator.clipboard.writeText) return;
  Array.prototype.forEach.call(buttons, function (button) {
    var id = button.getAttribute('data-copy');
    var source = document.getElementById(id);
    var status = document.getElementById(id + '-status');
    if (!source) return;
    button.hidden = false;
    button.addEventListener('click', function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () {
          if (status) status.textContent = 'Copied';
        },
        function () {
          if (status) status.textContent = 'Could not copy: select the text and copy it';
        }
      );
    });
  });
})();
