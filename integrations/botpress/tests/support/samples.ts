// Messages of every Botpress type, as a bot conversation or an agent would have them.

export const CARD = {
  title: 'Order #1042',
  subtitle: '2 items, shipped Monday',
  imageUrl: 'https://shop.example.com/orders/1042.png',
  actions: [
    { action: 'postback', label: 'Track it', value: 'track-1042' },
    { action: 'url', label: 'Open the order', value: 'https://shop.example.com/orders/1042' },
  ],
}

export const SECOND_CARD = {
  title: 'Order #1043',
  actions: [{ action: 'say', label: 'This one', value: 'order 1043' }],
}

/** One message of each type Botpress has, with the payload the desk should store for it. */
export const EVERY_TYPE: Array<{ type: string; payload: Record<string, unknown> }> = [
  { type: 'text', payload: { text: 'Hi, my parcel arrived crushed' } },
  { type: 'image', payload: { imageUrl: 'https://files.example.com/box.jpg', title: 'box.jpg' } },
  { type: 'audio', payload: { audioUrl: 'https://files.example.com/note.ogg' } },
  { type: 'video', payload: { videoUrl: 'https://files.example.com/unboxing.mp4', title: 'Unboxing' } },
  { type: 'file', payload: { fileUrl: 'https://files.example.com/invoice.pdf', title: 'invoice.pdf' } },
  { type: 'location', payload: { latitude: 45.5017, longitude: -73.5673, address: '1 Main St', title: 'Home' } },
  { type: 'card', payload: CARD },
  { type: 'carousel', payload: { items: [CARD, SECOND_CARD] } },
  {
    type: 'choice',
    payload: {
      text: 'What went wrong?',
      options: [
        { label: 'It is damaged', value: 'damaged' },
        { label: 'Something is missing', value: 'missing' },
      ],
    },
  },
  { type: 'dropdown', payload: { text: 'Where do you live?', options: [{ label: 'Canada', value: 'ca' }] } },
  { type: 'markdown', payload: { markdown: '**Refunds** take _five_ days' } },
  {
    type: 'bloc',
    payload: {
      items: [
        { type: 'text', payload: { text: 'Here is your return label' } },
        { type: 'markdown', payload: { markdown: '_Print it_ and stick it on the box' } },
        { type: 'file', payload: { fileUrl: 'https://files.example.com/label.pdf', title: 'label.pdf' } },
      ],
    },
  },
]
