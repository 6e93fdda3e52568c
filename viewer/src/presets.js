// Window presets for the image shown, by its modality and body part (issue 16). On CT the
// presets are in Hounsfield units and mean the same on every scanner: keys 5-8 are always soft
// tissue, lung, bone and brain, and the list puts first what the body part is read in. Other
// modalities have no absolute scale (a radiograph's values depend on the detector and the
// exposure), so their presets are the windows the modality itself recorded for the image:
// Window Center (0028,1050) and Window Width (0028,1051) may hold several pairs, each named by
// Window Center & Width Explanation (0028,1055) (PS3.3 C.11.2.1.2), e.g. "BONE" and "SOFT".

// Width / level in HU, as the centre and width of PS3.3 C.11.2.1.2.1.
export const CT_PRESETS = [
  { key: "5", name: "Soft tissue", width: 400, level: 40 },
  { key: "6", name: "Lung", width: 1500, level: -600 },
  { key: "7", name: "Bone", width: 1800, level: 400 },
  { key: "8", name: "Brain", width: 80, level: 40 },
];

// Which CT preset a body part is read in first (Body Part Examined (0018,0015), PS3.16 CID 4030
// code meanings and the words a veterinary modality writes).
const CT_FIRST = [
  [/HEAD|SKULL|BRAIN|CRANI/, "Brain"],
  [/CHEST|THORAX|LUNG/, "Lung"],
  [/SPINE|PELVIS|HIP|STIFLE|KNEE|ELBOW|SHOULDER|CARPUS|TARSUS|LIMB|EXTREMITY|BONE|FEMUR|TIBIA|HUMERUS/, "Bone"],
];

const TAG = { modality: "00080060", bodyPart: "00180015", centre: "00281050", width: "00281051", explanation: "00281055" };

function values(meta, tag) {
  const element = meta && meta[tag];
  return element && Array.isArray(element.Value) ? element.Value : [];
}

// The presets for an image, in the order shown; each { key, name, width, level }. `key` is the
// digit that applies it (5-8), when it has one.
export function presetsFor(meta) {
  const modality = String(values(meta, TAG.modality)[0] || "");
  const bodyPart = String(values(meta, TAG.bodyPart)[0] || "").toUpperCase();
  if (modality === "CT") {
    const first = (CT_FIRST.find(([pattern]) => pattern.test(bodyPart)) || [null, "Soft tissue"])[1];
    return [...CT_PRESETS].sort((a, b) => (b.name === first) - (a.name === first));
  }
  const centres = values(meta, TAG.centre).map(Number);
  const widths = values(meta, TAG.width).map(Number);
  const names = values(meta, TAG.explanation);
  const recorded = [];
  for (let i = 0; i < Math.min(centres.length, widths.length, 4); i += 1) {
    if (!(widths[i] >= 1) || !Number.isFinite(centres[i])) continue; // PS3.3 C.11.2.1.2: width ≥ 1
    recorded.push({ key: String(5 + recorded.length), name: names[i] || `Window ${i + 1}`, width: widths[i], level: centres[i] });
  }
  return recorded;
}
