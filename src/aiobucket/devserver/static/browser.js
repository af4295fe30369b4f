// aiobucket bucket browser: upload (drag and drop or file input) and delete.
// Keys come from data- attributes; text is only ever set with textContent.
(() => {
  "use strict";
  const main = document.querySelector("main[data-bucket]");
  if (!main) return;
  const token = document.querySelector('meta[name="aiobucket-token"]').content;
  const bucket = main.dataset.bucket;
  const prefix = main.dataset.prefix || "";
  const status = document.getElementById("status");
  const drop = document.getElementById("drop");
  const input = document.getElementById("file-input");

  const objectUrl = (key) =>
    "/api/b/" + encodeURIComponent(bucket) + "/o/" + key.split("/").map(encodeURIComponent).join("/");

  const say = (text, failed) => {
    status.textContent = text;
    status.classList.toggle("error", Boolean(failed));
  };

  async function upload(files) {
    let done = 0;
    for (const file of files) {
      say("Uploading " + file.name + "…");
      const resp = await fetch(objectUrl(prefix + file.name), {
        method: "PUT",
        body: file,
        headers: {
          "Content-Type": file.type || "application/octet-stream",
          "X-Aiobucket-Token": token,
        },
      });
      if (!resp.ok) {
        say("Upload of " + file.name + " failed: " + resp.status + " " + (await resp.text()), true);
        return;
      }
      done += 1;
    }
    if (done) location.reload();
  }

  async function remove(button) {
    const key = button.dataset.key;
    if (!window.confirm("Delete " + key + "?")) return;
    button.disabled = true;
    const resp = await fetch(objectUrl(key), { method: "DELETE", headers: { "X-Aiobucket-Token": token } });
    if (resp.ok || resp.status === 404) {
      button.closest("tr").remove();
      say("Deleted " + key);
    } else {
      button.disabled = false;
      say("Delete of " + key + " failed: " + resp.status + " " + (await resp.text()), true);
    }
  }

  input.addEventListener("change", () => {
    if (input.files.length) upload(Array.from(input.files));
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) upload(Array.from(event.dataTransfer.files));
  });
  main.addEventListener("click", (event) => {
    const button = event.target.closest("button.delete");
    if (button) remove(button);
  });
})();
