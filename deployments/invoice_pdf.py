"""An invoice as a PDF (fpdf2): header, one line per booking, totals in the ledger and display currency."""
from __future__ import annotations

from typing import Any


def render(invoice: Any, lines: list[Any]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(f"Invoice {invoice['id']}")
    pdf.set_creator("GPU Broker")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "GPU Broker - Invoice", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    cur = invoice["currency"].strip()
    for label, value in (("Invoice", invoice["id"]), ("Tenant", invoice["tenant_id"]),
                         ("Period (UTC)", f"{invoice['period_start']:%Y-%m-%d %H:%M} - {invoice['period_end']:%Y-%m-%d %H:%M}"),
                         ("Status", invoice["status"]), ("Usage minutes", invoice["usage_count"])):
        pdf.cell(40, 6, f"{label}:")
        pdf.cell(0, 6, str(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 9)
    widths = (70, 30, 22, 28, 36)
    for w, h in zip(widths, ("Booking", "Provider", "Minutes", f"Price/h ({cur})", f"Amount ({cur})")):
        pdf.cell(w, 7, h, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", size=8)
    for ln in lines:
        for w, v in zip(widths, (str(ln["booking_id"]), ln["provider_id"] or "", str(ln["minutes"]),
                                 str(ln["price_per_hour"]), str(ln["amount"]))):
            pdf.cell(w, 6, v, border=1)
        pdf.ln()
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 7, f"Total: {invoice['total']} {cur}", new_x="LMARGIN", new_y="NEXT")
    d_cur = (invoice["display_currency"] or cur).strip()
    if d_cur != cur and invoice["display_total"] is not None:
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 6, f"Display: {invoice['display_total']} {d_cur} at {invoice['fx_rate']} {d_cur}/{cur} "
                       f"({invoice['fx_source']}, {invoice['fx_as_of']:%Y-%m-%d %H:%M} UTC)", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
