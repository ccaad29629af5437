"""The nightly MIS tracker (reading the store, the figures, the sheets, the workbook writer) and its delivery."""
