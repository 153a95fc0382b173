-- sensorData 1 -> 2: four features computed from x and y (the Rust step AddFeatures, as SQL).
SELECT *,
       sqrt(x * x + y * y)                                   AS magnitude,
       atan2(y, x)                                           AS angle,
       CASE WHEN sqrt(x * x + y * y) = 0 THEN NULL
            ELSE x / sqrt(x * x + y * y) END                 AS x_norm,
       CAST(CASE WHEN x IS NULL OR y IS NULL THEN NULL
                 WHEN x >= 0 AND y >= 0 THEN 1
                 WHEN x < 0 AND y >= 0 THEN 2
                 WHEN x < 0 THEN 3
                 ELSE 4 END AS TINYINT)                      AS quadrant
FROM input
