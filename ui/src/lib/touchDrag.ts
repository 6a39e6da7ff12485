// Drag by touch (and pen): browsers do not start HTML drag and drop from a finger, so a card's
// handle follows the pointer itself. Pointer capture keeps the events coming while the finger
// leaves the handle; the drop target is whatever element marked `data-drop` is under the finger
// (hit testing ignores capture). Near the scroller's edges the board scrolls, so a phone, which
// shows one column at a time, can reach the others. Mouse pointers are left to native drag.
import { useRef, useState, type PointerEvent, type RefObject } from "react";

export type TouchDrag = { id: number; label: string; x: number; y: number; over: string | null };

/** Pixels from the scroller's left or right edge where a drag scrolls it, and by how much. */
const EDGE = 32;
const STEP = 24;

function dropAt(x: number, y: number): string | null {
  const el = document.elementFromPoint(x, y);
  return el?.closest<HTMLElement>("[data-drop]")?.dataset.drop ?? null;
}

export function useTouchDrag(scroller: RefObject<HTMLElement | null>, onDrop: (id: number, target: string) => void) {
  const [drag, setDrag] = useState<TouchDrag | null>(null);
  const current = useRef<TouchDrag | null>(null);
  const update = (next: TouchDrag | null) => {
    current.current = next;
    setDrag(next);
  };

  const handleProps = (id: number, label: string) => ({
    onPointerDown: (e: PointerEvent<HTMLElement>) => {
      if (e.pointerType === "mouse") return;
      e.preventDefault();
      e.currentTarget.setPointerCapture(e.pointerId);
      update({ id, label, x: e.clientX, y: e.clientY, over: dropAt(e.clientX, e.clientY) });
    },
    onPointerMove: (e: PointerEvent<HTMLElement>) => {
      const now = current.current;
      if (!now || now.id !== id) return;
      const box = scroller.current?.getBoundingClientRect();
      if (box && e.clientX > box.right - EDGE) scroller.current?.scrollBy({ left: STEP });
      if (box && e.clientX < box.left + EDGE) scroller.current?.scrollBy({ left: -STEP });
      update({ ...now, x: e.clientX, y: e.clientY, over: dropAt(e.clientX, e.clientY) });
    },
    onPointerUp: (e: PointerEvent<HTMLElement>) => {
      const now = current.current;
      if (!now || now.id !== id) return;
      const target = dropAt(e.clientX, e.clientY);
      update(null);
      if (target) onDrop(id, target);
    },
    onPointerCancel: () => update(null),
  });

  return { drag, handleProps };
}
