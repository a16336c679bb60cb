-- Derived values (issue 3): air hourly/daily per station, region daily, water
-- daily/monthly per section, and the queue of station-days that late or new
-- readings have touched.

-- (station, Beijing day) pairs whose readings changed since they were last
-- derived; filled by the writer in the same statement that stores readings.
CREATE TABLE derive_dirty (
    station_id  text COLLATE "C" NOT NULL,
    day         date NOT NULL,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, day)
);

-- Hourly values per air station. ts = start of the hour. A NULL concentration is
-- missing or invalid (GB 3095 Table 4: hour >= 45 min of data; HJ 212 flags other
-- than N/T), never zero.
CREATE TABLE air_hour (
    station_id   text COLLATE "C" NOT NULL,
    ts           timestamptz NOT NULL,
    so2          double precision,
    no2          double precision,
    co           double precision,
    o3           double precision,
    pm10         double precision,
    pm25         double precision,
    o3_8h        double precision,  -- trailing 8-h moving mean ending with this hour (>= 6 of 8)
    pm10_24h     double precision,  -- trailing 24-h moving means (>= 20 of 24): the
    pm25_24h     double precision,  --   HJ 633-2012 real-time PM indicators
    so2_24h      double precision,  -- trailing 24-h SO2 (2012: stands in when SO2 1-h > 800)
    aqi          smallint,
    category     smallint,
    primary_pollutants text[] NOT NULL DEFAULT '{}',
    edition      smallint NOT NULL,
    PRIMARY KEY (station_id, ts)
);

-- Daily values per air station (Beijing natural day).
CREATE TABLE air_day (
    station_id   text COLLATE "C" NOT NULL,
    day          date NOT NULL,
    so2          double precision,   -- valid daily means (>= 20 hourly values), else NULL
    no2          double precision,
    co           double precision,
    pm10         double precision,
    pm25         double precision,
    o3_1h_max    double precision,   -- daily max 1-h (HJ 633-2012 daily indicator)
    o3_8h_max    double precision,   -- MDA8: max of the 17 windows ending 08:00..24:00
    n_so2 smallint NOT NULL DEFAULT 0, n_no2 smallint NOT NULL DEFAULT 0,
    n_co smallint NOT NULL DEFAULT 0, n_o3 smallint NOT NULL DEFAULT 0,
    n_pm10 smallint NOT NULL DEFAULT 0, n_pm25 smallint NOT NULL DEFAULT 0,
    n_o3_8h      smallint NOT NULL DEFAULT 0,  -- valid 8-h windows in the day
    aqi          smallint,
    category     smallint,
    primary_pollutants text[] NOT NULL DEFAULT '{}',
    iaqi         jsonb NOT NULL DEFAULT '{}',
    complete     boolean NOT NULL DEFAULT false,
    edition      smallint NOT NULL,
    PRIMARY KEY (station_id, day)
);

-- City (taiyuan, xinzhou) and zone daily values: the mean of the assessed
-- stations' valid daily values (clean-control points excluded), AQI from those
-- means (HJ 663: average first, then IAQI).
CREATE TABLE region_day (
    region       text COLLATE "C" NOT NULL,
    day          date NOT NULL,
    so2          double precision,
    no2          double precision,
    co           double precision,
    pm10         double precision,
    pm25         double precision,
    o3_1h_max    double precision,
    o3_8h_max    double precision,
    n_stations   smallint NOT NULL,
    aqi          smallint,
    category     smallint,
    primary_pollutants text[] NOT NULL DEFAULT '{}',
    iaqi         jsonb NOT NULL DEFAULT '{}',
    complete     boolean NOT NULL DEFAULT false,
    edition      smallint NOT NULL,
    PRIMARY KEY (region, day)
);

-- Water: daily means per section and parameter; monthly means with their
-- GB 3838 class; the section's class per month (single-factor, worst governs).
CREATE TABLE water_day (
    station_id   text COLLATE "C" NOT NULL,
    day          date NOT NULL,
    parameter    text COLLATE "C" NOT NULL,
    value        double precision NOT NULL,
    n            smallint NOT NULL,
    PRIMARY KEY (station_id, day, parameter)
);

CREATE TABLE water_month (
    station_id   text COLLATE "C" NOT NULL,
    month        date NOT NULL,  -- first day of the month
    parameter    text COLLATE "C" NOT NULL,
    value        double precision NOT NULL,
    n_days       smallint NOT NULL,
    class        smallint,       -- 1..6 (6 = worse than V); NULL where not classified
    PRIMARY KEY (station_id, month, parameter)
);

CREATE TABLE water_section_month (
    station_id      text COLLATE "C" NOT NULL,
    month           date NOT NULL,
    class           smallint NOT NULL,
    target_class    smallint,
    meets_target    boolean,
    main_pollutants text[] NOT NULL DEFAULT '{}',
    exceedance      jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (station_id, month)
);

-- Dust periods supplied by the provincial/CNEMC audit (standards.md §4):
-- applied to PM10/PM2.5 statistics (dust-deducted results) only.
CREATE TABLE dust_period (
    id          bigserial PRIMARY KEY,
    region      text COLLATE "C" NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at)
);
