"""The six target emotions, in the column order of the ABAW EMI label CSV."""

EMOTIONS: tuple[str, ...] = (
    "Admiration",
    "Amusement",
    "Determination",
    "Empathic Pain",
    "Excitement",
    "Joy",
)

# Exact header of Hume-Vidmimic2 label files and of the ABAW submission CSV.
LABEL_CSV_HEADER: tuple[str, ...] = ("Filename", *EMOTIONS)
