//! Rendering the order-lines export (CSV), in its planted and fixed forms.
//!
//! The planted form is the allocation-heavy code that passes review because each line looks
//! harmless: per item it formats every field into a new `String`, pairs each with a clone of its
//! column name as a generic serializer would, collects and joins the values, and appends the row
//! with `format!("{out}{row}")`, which copies everything rendered so far: allocated bytes grow with
//! the square of the item count. The fixed form writes every field into one buffer whose capacity
//! is estimated up front. Both produce the same bytes; an allocation profile of the export route
//! points at [`export_planted`].

use std::fmt::Write;

/// One exported order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportLine {
    pub order_id: i64,
    pub reference: String,
    pub status: String,
    pub product: String,
    pub category: String,
    pub quantity: i64,
    pub price_cents: i64,
}

const HEADER: [&str; 7] = [
    "order_id",
    "reference",
    "status",
    "product",
    "category",
    "quantity",
    "price",
];

/// The planted form: a fresh string and vector per field and row, and a copy of everything
/// rendered so far per row.
#[inline(never)]
pub fn export_planted(lines: &[ExportLine]) -> String {
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    let mut out = header.join(",") + "\n";
    for line in lines {
        let fields: Vec<String> = vec![
            line.order_id.to_string(),
            line.reference.clone(),
            line.status.clone(),
            line.product.clone(),
            line.category.clone(),
            line.quantity.to_string(),
            format!("{}.{:02}", line.price_cents / 100, line.price_cents % 100),
        ];
        // A record of (column, value) pairs, as a generic serializer would build it.
        let record: Vec<(String, String)> = header.iter().cloned().zip(fields).collect();
        let row: Vec<String> = record.iter().map(|(_, value)| value.clone()).collect();
        out = format!("{out}{}\n", row.join(","));
    }
    out
}

/// The fixed form: one buffer, sized once, written in place.
#[inline(never)]
pub fn export_fixed(lines: &[ExportLine]) -> String {
    const PER_LINE: usize = 64;
    let mut out = String::with_capacity(64 + lines.len() * PER_LINE);
    for (i, name) in HEADER.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
    }
    out.push('\n');
    for line in lines {
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}.{:02}",
            line.order_id,
            line.reference,
            line.status,
            line.product,
            line.category,
            line.quantity,
            line.price_cents / 100,
            line.price_cents % 100
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_render_the_same_bytes() {
        let lines: Vec<ExportLine> = (0..50)
            .map(|i| ExportLine {
                order_id: i,
                reference: format!("ORD-{i:010X}"),
                status: "paid".into(),
                product: format!("Product {i}"),
                category: "books".into(),
                quantity: i % 4 + 1,
                price_cents: 1999 + i * 101,
            })
            .collect();
        let planted = export_planted(&lines);
        assert_eq!(planted, export_fixed(&lines));
        assert_eq!(planted.lines().count(), 51);
        assert!(
            planted.contains("\n3,ORD-0000000003,paid,Product 3,books,4,23.02\n"),
            "{planted}"
        );
        assert_eq!(
            export_fixed(&[]),
            "order_id,reference,status,product,category,quantity,price\n"
        );
    }
}
