// Copying a share link.
export async function copyField(input, status) {
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = 'Link copied.';
  } catch (_) {
    input.focus();
    input.select();
    status.textContent = 'Press Ctrl+C (⌘C) to copy the selected link.';
  }
}
