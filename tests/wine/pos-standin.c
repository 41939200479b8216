/* POS stand-in for the Wine e2e tests: a focused window that appends every WM_KEYDOWN / WM_KEYUP /
   WM_CHAR it receives to a file, one line each, flushed at once:
     K <vk hex> <scan hex>   key down      U <vk hex> <scan hex>   key up      C <UTF-16 code hex>
   It writes "ready" when its window is the foreground window. Usage: pos-standin.exe OUTFILE */
#include <windows.h>
#include <stdio.h>
static FILE *out;
static void line(const char *fmt, unsigned a, unsigned b) { fprintf(out, fmt, a, b); fflush(out); }
static LRESULT CALLBACK wp(HWND h, UINT m, WPARAM w, LPARAM l) {
  switch (m) {
  case WM_KEYDOWN: case WM_SYSKEYDOWN: line("K %02x %02x\n", (unsigned)w, (unsigned)((l >> 16) & 0x1ff)); return 0;
  case WM_KEYUP: case WM_SYSKEYUP: line("U %02x %02x\n", (unsigned)w, (unsigned)((l >> 16) & 0x1ff)); return 0;
  case WM_CHAR: line("C %04x\n", (unsigned)w, 0); return 0;
  case WM_DESTROY: PostQuitMessage(0); return 0;
  }
  return DefWindowProcW(h, m, w, l);
}
int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: pos-standin OUTFILE\n"); return 2; }
  out = fopen(argv[1], "w");
  if (!out) { fprintf(stderr, "cannot open %s\n", argv[1]); return 1; }
  WNDCLASSEXW wc = {sizeof wc};
  wc.lpfnWndProc = wp; wc.hInstance = GetModuleHandleW(NULL); wc.lpszClassName = L"PosStandIn";
  wc.hbrBackground = (HBRUSH)(COLOR_WINDOW + 1); wc.hCursor = LoadCursor(NULL, IDC_ARROW);
  RegisterClassExW(&wc);
  HWND hwnd = CreateWindowExW(0, L"PosStandIn", L"pos-standin", WS_OVERLAPPEDWINDOW | WS_VISIBLE, 100, 100, 400, 300, NULL, NULL, wc.hInstance, NULL);
  if (!hwnd) { fprintf(stderr, "CreateWindowExW failed: %lu\n", GetLastError()); return 1; }
  ShowWindow(hwnd, SW_SHOW); SetForegroundWindow(hwnd); SetFocus(hwnd);
  int ready = 0;
  SetTimer(hwnd, 1, 50, NULL);
  MSG msg;
  while (GetMessageW(&msg, NULL, 0, 0) > 0) {
    if (!ready && msg.message == WM_TIMER && GetForegroundWindow() == hwnd && GetFocus() == hwnd) {
      fprintf(out, "ready\n"); fflush(out); ready = 1; KillTimer(hwnd, 1);
    }
    TranslateMessage(&msg); DispatchMessageW(&msg);
  }
  return 0;
}
