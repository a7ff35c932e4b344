"""Word lists for people, companies, places and products (German-flavoured, with accents on purpose:
identity resolution has to cope with "Müller" vs "Muller")."""

FIRST_NAMES = [
    "Anna", "Lena", "Marie", "Sophie", "Julia", "Laura", "Lea", "Hannah", "Sarah", "Katharina", "Johanna",
    "Clara", "Emilia", "Charlotte", "Mia", "Nora", "Paula", "Greta", "Frieda", "Zoë", "Chloé", "Renée",
    "Jürgen", "Jörg", "Björn", "Sören", "Günter", "René", "André", "José", "Lukas", "Jonas", "Leon",
    "Felix", "Paul", "Maximilian", "Tobias", "David", "Simon", "Jan", "Tim", "Niklas", "Moritz", "Florian",
    "Stefan", "Michael", "Thomas", "Andreas", "Markus", "Christian", "Sebastian", "Daniel", "Matthias",
    "Alexander", "Philipp", "Benedikt", "Fabian", "Oliver", "Emre", "Mehmet", "Ayşe", "Elif", "Agnieszka",
    "Tomasz", "Łukasz", "Ivana", "Mateo", "Luca", "Giulia", "Sofía",
]

LAST_NAMES = [
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
    "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann",
    "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier",
    "Lehmann", "Schmid", "Schulze", "Maier", "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber",
    "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn", "Vogel", "Friedrich",
    "Keller", "Günther", "Frank", "Berger", "Winkler", "Roth", "Beck", "Lorenz", "Baumann", "Franke",
    "Albrecht", "Schuster", "Simon", "Ludwig", "Böhm", "Winter", "Kraus", "Martin", "Schumacher", "Krämer",
    "Vogt", "Stein", "Jäger", "Otto", "Sommer", "Groß", "Seidel", "Heinrich", "Brandt", "Haas", "Schreiber",
    "Graf", "Schulte", "Dietrich", "Ziegler", "Kuhn", "Kühn", "Pohl", "Engel", "Horn", "Busch", "Bergmann",
    "Thomas", "Voigt", "Sauer", "Arnold", "Wolff", "Pfeiffer", "Yılmaz", "Kaya", "Nowak", "Kowalski",
    "García", "Rossi", "Novák",
]

COMPANY_STEMS = [
    "Nordlicht", "Alpen", "Rhein", "Elbe", "Weser", "Spree", "Donau", "Main", "Hansa", "Bavaria", "Sachsen",
    "Westfalen", "Brücken", "Lichtblick", "Sternwerk", "Blauwal", "Eichen", "Tannen", "Löwen", "Adler",
    "Falken", "Kranich", "Kompass", "Anker", "Leuchtturm", "Quelle", "Gipfel", "Horizont", "Mosaik",
    "Prisma", "Vektor", "Kobalt", "Granit", "Basalt", "Silber", "Kupfer", "Zeder", "Birken", "Linden",
    "Ahorn", "Mühlen", "Schmiede", "Hafen", "Werft", "Kontor", "Zentral", "Nova", "Helix", "Orbit", "Pulsar",
]

COMPANY_KINDS = [
    "Logistik", "Maschinenbau", "Software", "Consulting", "Handel", "Bau", "Medien", "Energie", "Pharma",
    "Automotive", "Immobilien", "Versicherung", "Finanz", "Systeme", "Technik", "Lebensmittel", "Textil",
    "Chemie", "Elektro", "Gastro",
]

COMPANY_FORMS = ["GmbH", "AG", "GmbH & Co. KG", "KG", "SE", "e.K."]

INDUSTRIES = [
    "Manufacturing", "Retail", "Logistics", "Software", "Financial Services", "Healthcare", "Construction",
    "Energy", "Media", "Professional Services", "Public Sector", "Education", "Hospitality", "Automotive",
]

JOB_TITLES = [
    "CEO", "CFO", "CTO", "Head of IT", "IT Manager", "Procurement Manager", "Purchasing Lead",
    "Operations Manager", "Office Manager", "Head of Sales", "Marketing Manager", "Controller",
    "Project Manager", "Facility Manager", "Team Lead",
]

CITIES = {
    "North": ["Hamburg", "Bremen", "Kiel", "Hannover", "Lübeck", "Rostock", "Oldenburg"],
    "South": ["München", "Stuttgart", "Nürnberg", "Augsburg", "Freiburg", "Regensburg", "Ulm"],
    "East": ["Berlin", "Leipzig", "Dresden", "Potsdam", "Chemnitz", "Magdeburg", "Cottbus"],
    "West": ["Köln", "Düsseldorf", "Dortmund", "Essen", "Bonn", "Münster", "Aachen"],
    "Central": ["Frankfurt am Main", "Kassel", "Erfurt", "Würzburg", "Mainz", "Wiesbaden", "Gießen"],
}

AREA_CODES = {"North": ["40", "421", "431", "511"], "South": ["89", "711", "911", "821"],
              "East": ["30", "341", "351", "331"], "West": ["221", "211", "231", "201"],
              "Central": ["69", "561", "361", "931"]}

PRODUCTS = {
    # product line: (names, list price range, cost share, recurring)
    "Software": (["CRM Cloud Starter", "CRM Cloud Professional", "CRM Cloud Enterprise", "Analytics Suite",
                  "Marketing Automation", "Service Desk Cloud", "Field Service App", "Data Connector Pack",
                  "Forecasting Add-on", "Portal Add-on"], (400, 6000), 0.15, True),
    "Services": (["Implementation Package S", "Implementation Package M", "Implementation Package L",
                  "Data Migration", "Custom Integration", "Process Consulting Day", "Health Check",
                  "Architecture Review"], (900, 12000), 0.6, False),
    "Hardware": (["Barcode Scanner", "Rugged Tablet", "Label Printer", "Headset Pro", "Docking Station",
                  "Conference Camera", "POS Terminal", "Signature Pad", "Mobile Printer", "Smart Display"],
                 (60, 2200), 0.7, False),
    "Support": (["Support Basic", "Support Plus", "Support Premium", "Extended Warranty", "Managed Backup",
                 "24/7 Hotline"], (200, 3500), 0.3, True),
    "Training": (["Admin Training", "User Training Online", "Power User Workshop", "Reporting Course",
                  "Certification Exam", "Train the Trainer"], (90, 1600), 0.4, False),
}
PRODUCT_LINE_CODES = {"Software": "SW", "Services": "SV", "Hardware": "HW", "Support": "SP", "Training": "TR"}
